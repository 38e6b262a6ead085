"""The ``rag`` command: the one place that wires the service, ingest and evaluation together."""
