"""Atomic batches across shards: the two-phase workflow, its activities, inputs, start and
recovery."""
