"""Adapters that turn peer libraries into conformance targets (see each module)."""
