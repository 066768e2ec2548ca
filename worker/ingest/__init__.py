"""Ingest: the Worker that reads the Redis streams, applies batches through the engine, acks after
commit, and dead-letters what cannot be applied."""
