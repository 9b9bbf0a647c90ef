"""Temporal: what settles cross-shard transfers, by feature and by process.

- `workflows.settlement`: the saga `SettleCrossShardBatch` (`workflow`), its activities
  (`activities`), what travels through Temporal (`inputs`), and how it is started (`start`);
- `workflows.sweep`: the outbox sweep and the long-running sweeper (`workflow`), the sweep
  activity (`activities`), their inputs, and how the sweeper is started (`start`);
- `workflows.handover`: what the API process runs: the dispatcher that hands reserved
  transfers to sagas (`dispatcher`) and its Temporal client (`connect`).

Shared by all: `payloads` (the data converter), `search_attributes`, and `worker` (the
worker's assembly and the one sandbox policy). Workflow modules import no I/O library;
every SQL statement is in `shards`.
"""
