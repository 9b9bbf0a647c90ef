"""Resolve where the services are: environment first, then a running dev stack's file."""

from dataclasses import dataclass

from ledgerflow.settings import Settings
from ledgerflow.stackfile import StackInfo


class ConfigError(Exception):
    """The process cannot find its shards or Temporal."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The services a command talks to."""

    shard_dsns: list[str]
    temporal_address: str


def endpoints(settings: Settings) -> Endpoints:
    """Shard DSNs and the Temporal address from the settings or the dev stack file.

    Raises:
        ConfigError: neither names any shard.
    """
    if settings.shard_dsns:
        return Endpoints(settings.shard_dsns, settings.temporal_address)
    stack = StackInfo.read(settings.data_dir)
    if stack is None:
        raise ConfigError(
            "no shards configured: set LEDGERFLOW_SHARD_DSNS (a JSON list of PostgreSQL DSNs) "
            f"or run `ledgerflow dev` with data dir {settings.data_dir}"
        )
    return Endpoints(stack.shard_dsns, stack.temporal_address)
