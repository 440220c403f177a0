"""Smooch v1.1 relay internals: wire format, persistence, delivery and HTTP handlers."""
