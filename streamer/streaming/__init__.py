"""The stream: one pipeline (`pipeline.py`) run by the Faust worker (at-least-once) or the transactional
worker (exactly-once), the Kafka clients' configuration, the embedded broker and worker start-up."""
