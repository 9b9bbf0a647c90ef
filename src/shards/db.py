"""The database types that code outside `shards` may name, so that only `shards` imports asyncpg.

A repository function takes either a plain connection or the proxy a pool hands out, so
`Connection` names both. Import-linter keeps asyncpg out of `workflows` and `api`; they
name these aliases instead.
"""

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection to one shard, plain or from its pool."""

Record: TypeAlias = asyncpg.Record
"""One row a query returned."""

DatabaseError: TypeAlias = asyncpg.PostgresError
"""What PostgreSQL raises for a statement it refused (outages are `cluster.SHARD_FAILURES`)."""
