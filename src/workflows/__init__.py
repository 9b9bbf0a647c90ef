"""Temporal: the cross-shard settlement saga, the outbox sweeper, activities and the worker."""
