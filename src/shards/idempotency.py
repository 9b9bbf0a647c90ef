"""Idempotency records: the same key and body replay the first response.

A record is claimed `in_flight` before the work and completed with the response after.
The work itself is exactly-once through the operation log on the shard that moves the
money, so a record left in flight by a crash is safe to retry once its lease expires.
"""

from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import IDEMPOTENCY_KEY_TTL_S, IDEMPOTENCY_LEASE_S


class ClaimOutcome(StrEnum):
    """What claiming a key found."""

    CLAIMED = "claimed"
    """New key (or an abandoned one): do the work."""
    REPLAY = "replay"
    """The work is done: return the stored response."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of claiming an idempotency key."""

    outcome: ClaimOutcome
    status: int | None = None
    body: bytes | None = None


async def claim_key(
    conn: asyncpg.Connection, *, api_key_id: str, key: str, request_hash: str
) -> Claim:
    """Claim `key` for a request, or find its stored response.

    Raises:
        LedgerError(idempotency_key_reused): the key was used with a different request.
        LedgerError(idempotency_key_in_flight): the first request with this key still runs.
    """
    row = await conn.fetchrow(
        "insert into idempotency_keys (api_key_id, key, request_hash, state)"
        " values ($1, $2, $3, 'in_flight')"
        " on conflict (api_key_id, key) do update set"
        "   request_hash = excluded.request_hash, state = 'in_flight', locked_at = now(),"
        "   created_at = now(), response_status = null, response_body = null"
        " where idempotency_keys.created_at < now() - make_interval(secs => $4)"
        "   or (idempotency_keys.state = 'in_flight'"
        "       and idempotency_keys.request_hash = excluded.request_hash"
        "       and idempotency_keys.locked_at < now() - make_interval(secs => $5))"
        " returning api_key_id",
        api_key_id,
        key,
        request_hash,
        float(IDEMPOTENCY_KEY_TTL_S),
        float(IDEMPOTENCY_LEASE_S),
    )
    if row is not None:
        return Claim(ClaimOutcome.CLAIMED)
    existing = await conn.fetchrow(
        "select request_hash, state, response_status, response_body from idempotency_keys"
        " where api_key_id = $1 and key = $2",
        api_key_id,
        key,
    )
    if existing is None:
        # Expired and deleted between the two statements: a retry claims it.
        raise LedgerError(ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT, "retry the request")
    if existing["request_hash"] != request_hash:
        raise LedgerError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used with a different request",
            "Idempotency-Key",
        )
    if existing["state"] == "in_flight":
        raise LedgerError(
            ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT,
            "a request with this Idempotency-Key is still being processed",
            "Idempotency-Key",
        )
    return Claim(ClaimOutcome.REPLAY, existing["response_status"], existing["response_body"])


async def complete_key(
    conn: asyncpg.Connection, *, api_key_id: str, key: str, status: int, body: bytes
) -> None:
    """Store the response of a claimed key."""
    await conn.execute(
        "update idempotency_keys set state = 'done', response_status = $3, response_body = $4"
        " where api_key_id = $1 and key = $2",
        api_key_id,
        key,
        status,
        body,
    )


async def release_key(conn: asyncpg.Connection, *, api_key_id: str, key: str) -> None:
    """Forget a claimed key whose request failed transiently, so a retry runs it again."""
    await conn.execute(
        "delete from idempotency_keys where api_key_id = $1 and key = $2 and state = 'in_flight'",
        api_key_id,
        key,
    )


async def purge_expired_keys(conn: asyncpg.Connection) -> int:
    """Delete keys past their retention; returns how many."""
    result = await conn.execute(
        "delete from idempotency_keys where created_at < now() - make_interval(secs => $1)",
        float(IDEMPOTENCY_KEY_TTL_S),
    )
    return int(result.split()[-1])
