"""tradechat-streamer: trader chat and RFQs from Kafka -> structured trades via llama.cpp."""

__version__ = "0.1.0"
