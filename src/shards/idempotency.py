"""Idempotency records: the same key and request replay the first response.

A record is claimed `in_flight` before the work and completed (`done`) with the response
after. The work itself is exactly-once through the operation log on the shard that moves
the money, so a record left in flight by a crash is safe to retry, with the same body, once
its lease expires. A request that reaches no final answer (a 202 while its saga settles, a
transient failure) releases its record by ending the lease at once, as if it had crashed:
the record stays bound to its body, so a retry with that body runs again and another body
is refused as reuse. (Deleting the record instead would let a second body under the key move
money again, on a shard where the first request's operation key is unknown.)

Every request writes its record twice, so the writes are batched per shard
(`IdempotencyStore`): concurrent requests share one statement and one WAL flush.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import IDEMPOTENCY_BATCH_SIZE_MAX, IDEMPOTENCY_KEY_TTL_S, IDEMPOTENCY_LEASE_S
from shards.batching import BatchObserver, ShardBatcher
from shards.cluster import ShardCluster
from shards.db import Connection


class ClaimOutcome(StrEnum):
    """What claiming a key found."""

    CLAIMED = "claimed"
    """New key (or an abandoned one): do the work."""
    REPLAY = "replay"
    """The work is done: return the stored response."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of claiming an idempotency key.

    A claimed key comes with the operation key its work moves money under, and the time
    the key was first claimed: both stay the same for every retry of the request, so the
    retry finds what the first attempt wrote (`api.idempotency.Attempt`).
    """

    outcome: ClaimOutcome
    status: int | None = None
    body: bytes | None = None
    operation_key: str | None = None
    first_claimed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """Claim `key` for a request that hashes to `request_hash`."""

    api_key_id: str
    key: str
    request_hash: str
    operation_key: str = ""
    """The operation key for the work if this claim starts the key's life anew."""


@dataclass(frozen=True, slots=True)
class KeyCompletion:
    """Store the response of a claimed key."""

    api_key_id: str
    key: str
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class KeyRelease:
    """Let go of a claimed key whose request reached no final answer (202, or a transient
    failure): a retry with the same body runs it again, and the key stays bound to it."""

    api_key_id: str
    key: str


KeyOperation = KeyClaim | KeyCompletion | KeyRelease
KeyResult = Claim | LedgerError | None
"""A `Claim` or the `LedgerError` refusing it for a `KeyClaim`; None for the others."""

_CLAIM = """
with c as (
    select * from unnest($1::text[], $2::text[], $3::text[], $6::text[])
        as c(api_key_id, key, request_hash, operation_key)
)
insert into idempotency_keys (api_key_id, key, request_hash, state, operation_key)
select api_key_id, key, request_hash, 'in_flight', operation_key from c
on conflict (api_key_id, key) do update set
    request_hash = excluded.request_hash, state = 'in_flight', locked_at = now(),
    created_at = case when idempotency_keys.created_at < now() - make_interval(secs => $4)
                      then now() else idempotency_keys.created_at end,
    operation_key = case when idempotency_keys.created_at < now() - make_interval(secs => $4)
                         then excluded.operation_key else idempotency_keys.operation_key end,
    response_status = null, response_body = null
where idempotency_keys.created_at < now() - make_interval(secs => $4)
   or (idempotency_keys.state = 'in_flight'
       and idempotency_keys.request_hash = excluded.request_hash
       and idempotency_keys.locked_at < now() - make_interval(secs => $5))
returning api_key_id, key, operation_key, created_at
"""

_STORED = """
select k.api_key_id, k.key, k.request_hash, k.state, k.response_status, k.response_body
from idempotency_keys k
join unnest($1::text[], $2::text[]) as c(api_key_id, key)
  on k.api_key_id = c.api_key_id and k.key = c.key
"""

# Completions and releases lock their rows in key order first, as claims do (their input
# is sorted), so two batches that share keys wait for each other rather than deadlock.
_COMPLETE = """
with c as (
    select * from unnest($1::text[], $2::text[], $3::int4[], $4::bytea[])
        as c(api_key_id, key, status, body)
), locked as (
    select k.api_key_id, k.key from idempotency_keys k join c using (api_key_id, key)
    order by k.api_key_id, k.key for update of k
)
update idempotency_keys k
set state = 'done', response_status = c.status, response_body = c.body
from locked join c using (api_key_id, key)
where k.api_key_id = locked.api_key_id and k.key = locked.key
"""

_RELEASE = """
with locked as (
    select k.api_key_id, k.key from idempotency_keys k
    join unnest($1::text[], $2::text[]) as c(api_key_id, key) using (api_key_id, key)
    where k.state = 'in_flight'
    order by k.api_key_id, k.key for update of k
)
update idempotency_keys k set locked_at = '-infinity'
from locked
where k.api_key_id = locked.api_key_id and k.key = locked.key and k.state = 'in_flight'
"""


@dataclass(frozen=True, slots=True)
class _Stored:
    request_hash: str
    state: str
    status: int | None = None
    body: bytes | None = None


def _judge(claim: KeyClaim, stored: _Stored | None) -> Claim | LedgerError:
    """What a claim that did not get the key finds in the stored record."""
    if stored is None:
        # Expired and deleted between the two statements: a retry claims it.
        return LedgerError(ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT, "retry the request")
    if stored.request_hash != claim.request_hash:
        return LedgerError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used with a different request",
            "Idempotency-Key",
        )
    if stored.state == "in_flight":
        return LedgerError(
            ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT,
            "a request with this Idempotency-Key is still being processed",
            "Idempotency-Key",
        )
    return Claim(ClaimOutcome.REPLAY, stored.status, stored.body)


async def _claim(
    conn: Connection, claims: list[tuple[int, KeyClaim]]
) -> dict[int, Claim | LedgerError]:
    """One statement claims every key of the batch, in sorted order (two batches sharing
    keys then wait for each other rather than in a cycle). The first claim of a key in the
    batch may get it; the others are judged against what is then stored, as if they came
    right after it, except that a released key the first claim could not take (it came with
    another body) tells them to retry rather than spend a statement on a second claim."""
    first: dict[tuple[str, str], KeyClaim] = {}
    for _, claim in claims:
        first.setdefault((claim.api_key_id, claim.key), claim)
    ordered = sorted(first.items())
    won = await conn.fetch(
        _CLAIM,
        [pair[0] for pair, _ in ordered],
        [pair[1] for pair, _ in ordered],
        [claim.request_hash for _, claim in ordered],
        float(IDEMPOTENCY_KEY_TTL_S),
        float(IDEMPOTENCY_LEASE_S),
        [claim.operation_key for _, claim in ordered],
    )
    claimed = {(r["api_key_id"], r["key"]): r for r in won}
    others = [pair for pair in first if pair not in claimed]
    stored: dict[tuple[str, str], _Stored] = {}
    if others:
        rows = await conn.fetch(_STORED, [p[0] for p in others], [p[1] for p in others])
        stored = {
            (r["api_key_id"], r["key"]): _Stored(
                r["request_hash"], r["state"], r["response_status"], r["response_body"]
            )
            for r in rows
        }
    results: dict[int, Claim | LedgerError] = {}
    for index, claim in claims:
        pair = (claim.api_key_id, claim.key)
        if pair not in claimed:
            results[index] = _judge(claim, stored.get(pair))
        elif first[pair] is claim:
            row = claimed[pair]
            results[index] = Claim(
                ClaimOutcome.CLAIMED,
                operation_key=row["operation_key"],
                first_claimed_at=row["created_at"],
            )
        else:
            results[index] = _judge(claim, _Stored(first[pair].request_hash, "in_flight"))
    return results


async def run_key_operations(
    conn: Connection, operations: Sequence[KeyOperation]
) -> list[KeyResult]:
    """Claim, complete and release idempotency keys: one statement per kind for the batch.

    Returns one result per operation, in order. The statements commit one by one, so when a
    later one fails, an earlier one may have been stored although its caller hears of the
    failure; that is safe: a stored response is replayed, and a released or still-claimed
    key is run again, exactly once, through the operation log.
    """
    claims = [(i, op) for i, op in enumerate(operations) if isinstance(op, KeyClaim)]
    completions = [op for op in operations if isinstance(op, KeyCompletion)]
    releases = [op for op in operations if isinstance(op, KeyRelease)]
    results: list[KeyResult] = [None] * len(operations)
    if completions:
        await conn.execute(
            _COMPLETE,
            [c.api_key_id for c in completions],
            [c.key for c in completions],
            [c.status for c in completions],
            [c.body for c in completions],
        )
    if releases:
        await conn.execute(_RELEASE, [r.api_key_id for r in releases], [r.key for r in releases])
    if claims:
        for index, result in (await _claim(conn, claims)).items():
            results[index] = result
    return results


class IdempotencyStore(ShardBatcher[KeyOperation, KeyResult]):
    """The idempotency records of every shard, written in batches per shard."""

    def __init__(
        self,
        cluster: ShardCluster,
        *,
        flushers_per_shard: int = 2,
        observer: BatchObserver | None = None,
    ) -> None:
        super().__init__(
            cluster,
            _run,
            what="idempotency",
            batch_size_max=IDEMPOTENCY_BATCH_SIZE_MAX,
            flushers_per_shard=flushers_per_shard,
            observer=observer,
        )

    def shard_of(self, api_key_id: str, key: str) -> int:
        """The shard that keeps the record of (API key, idempotency key)."""
        return self._cluster.shard_of(f"{api_key_id}:{key}").index

    async def claim(self, shard: int, claim: KeyClaim) -> Claim:
        """Claim a key, or find its stored response.

        Raises:
            LedgerError(idempotency_key_reused): the key was used with a different request.
            LedgerError(idempotency_key_in_flight): the first request with it still runs.
            LedgerError(shard_unavailable): the shard failed.
        """
        result = await self.submit(shard, claim)
        assert isinstance(result, Claim)
        return result

    async def complete(self, shard: int, completion: KeyCompletion) -> None:
        """Store the response of a claimed key.

        Raises:
            LedgerError(shard_unavailable): the shard failed.
        """
        await self.submit(shard, completion)

    async def release(self, shard: int, release: KeyRelease) -> None:
        """Let go of a claimed key: a retry with the same body runs again, another body is
        refused as reuse.

        Raises:
            LedgerError(shard_unavailable): the shard failed.
        """
        await self.submit(shard, release)


async def _run(conn: Connection, _: int, operations: Sequence[KeyOperation]) -> list[KeyResult]:
    return await run_key_operations(conn, operations)


async def purge_expired_keys(conn: Connection) -> int:
    """Delete keys past their retention; returns how many."""
    result = await conn.execute(
        "delete from idempotency_keys where created_at < now() - make_interval(secs => $1)",
        float(IDEMPOTENCY_KEY_TTL_S),
    )
    return int(result.split()[-1])
