"""History: replay a chat log onto the input topic, reprocess a topic range with another model, diff results."""
