"""API keys: `Authorization: Bearer <key>`, each key scoped to one tenant.

A malformed key is refused without a query, and an unknown one is remembered briefly, so a
flood of bad tokens costs the shards little. The lookup itself falls back from the catalog
shard to the copies on the others (`shards.api_keys.ApiKeyCatalog`).
"""

import time
from dataclasses import dataclass
from typing import TypeVar

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import (
    AUTH_CACHE_ENTRIES_MAX,
    AUTH_CACHE_TTL_S,
    AUTH_REFUSAL_CACHE_ENTRIES_MAX,
    AUTH_REFUSAL_CACHE_TTL_S,
)
from ledger.tenants import is_well_formed_api_key
from shards.api_keys import ApiKeyCatalog
from shards.cluster import ShardCluster

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key and the tenant it belongs to."""

    api_key_id: str
    tenant_id: str


def _invalid() -> LedgerError:
    return LedgerError(ErrorCode.API_KEY_INVALID, "invalid API key", "Authorization")


class Authenticator:
    """Resolves bearer keys, caching answers briefly to spare the catalog."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._catalog = ApiKeyCatalog(cluster)
        self._known: dict[str, tuple[float, Principal]] = {}
        self._refused: dict[str, float] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `Authorization` header.

        Raises:
            LedgerError(api_key_missing): no bearer key given.
            LedgerError(api_key_invalid): the key is malformed, unknown or revoked.
            asyncpg.PostgresError, OSError, TimeoutError: no shard could answer (a 503).
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
        if not is_well_formed_api_key(secret):
            raise _invalid()
        now = time.monotonic()
        known = self._known.get(secret)
        if known is not None and known[0] > now:
            return known[1]
        refused_until = self._refused.get(secret)
        if refused_until is not None and refused_until > now:
            raise _invalid()
        found = await self._catalog.find(secret)
        if found is None:
            _remember(
                self._refused,
                secret,
                now + AUTH_REFUSAL_CACHE_TTL_S,
                limit=AUTH_REFUSAL_CACHE_ENTRIES_MAX,
            )
            raise _invalid()
        principal = Principal(api_key_id=found[0], tenant_id=found[1])
        _remember(
            self._known, secret, (now + AUTH_CACHE_TTL_S, principal), limit=AUTH_CACHE_ENTRIES_MAX
        )
        self._refused.pop(secret, None)
        return principal


def _remember(cache: dict[str, V], secret: str, value: V, *, limit: int) -> None:
    """Store `value`, emptying the cache first when full: a flood of distinct keys then
    costs memory up to the bound and a few extra lookups, never more."""
    if len(cache) >= limit:
        cache.clear()
    cache[secret] = value
