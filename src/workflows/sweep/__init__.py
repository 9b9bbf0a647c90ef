"""The outbox sweep: the sweep and sweeper workflows, the sweep activity, and the start."""
