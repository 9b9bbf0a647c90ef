"""`ledgerflow bench`: one harness that drives every transfer scenario through the HTTP API,
measures the PostgreSQL limit (pgbench) and the one-workflow-per-transfer baseline beside
it, prints one table, writes JSON and a PNG, and reconciles the books at the end.

Only `scenarios` is imported by the CLI at start-up; the rest needs the `bench` extra
(aiohttp, hdrhistogram, matplotlib) and is imported when the command runs.
"""
