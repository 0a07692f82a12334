"""Test support code: a real Kafka broker harness and polling helpers."""
