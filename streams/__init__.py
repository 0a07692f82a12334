"""The pipeline and its two transports (Kafka via Faust, and embedded), plus the command line."""
