"""Getting chat onto the input topic: `streamer produce` (stdin, files) and POST /ingest (webhooks)."""
