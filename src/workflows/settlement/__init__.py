"""The cross-shard settlement saga: workflow, activities, inputs, and its start."""
