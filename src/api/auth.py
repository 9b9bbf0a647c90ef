"""API keys: `Authorization: Bearer <key>`, each key scoped to one tenant."""

import time
from dataclasses import dataclass

from ledger.errors import ErrorCode, LedgerError
from shards.api_keys import find_api_key
from shards.cluster import ShardCluster

_CACHE_TTL_S = 60.0
_CACHE_ENTRIES_MAX = 10_000
CATALOG_SHARD = 0
"""Shard 0 stores the API keys."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key and the tenant it belongs to."""

    api_key_id: str
    tenant_id: str


class Authenticator:
    """Resolves bearer keys, caching positive answers briefly to spare the catalog."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `Authorization` header.

        Raises:
            LedgerError(api_key_missing): no bearer key given.
            LedgerError(api_key_invalid): the key is unknown or revoked.
        """
        if not authorization:
            raise LedgerError(
                ErrorCode.API_KEY_MISSING,
                "send your API key as 'Authorization: Bearer <key>'",
                "Authorization",
            )
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise LedgerError(
                ErrorCode.API_KEY_INVALID,
                "use the Bearer scheme: 'Authorization: Bearer <key>'",
                "Authorization",
            )
        secret = secret.strip()
        now = time.monotonic()
        cached = self._cache.get(secret)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._cluster.shards[CATALOG_SHARD].pool.acquire() as conn:
            found = await find_api_key(conn, secret)
        if found is None:
            raise LedgerError(ErrorCode.API_KEY_INVALID, "invalid API key", "Authorization")
        principal = Principal(api_key_id=found[0], tenant_id=found[1])
        if len(self._cache) >= _CACHE_ENTRIES_MAX:
            self._cache.clear()
        self._cache[secret] = (now + _CACHE_TTL_S, principal)
        return principal
