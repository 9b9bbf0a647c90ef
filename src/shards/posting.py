"""The posting SQL: apply a batch of movements on one shard in one transaction.

Single-shard transfers, saga steps and group-committed batches all come through
`post_batch`, and every balance rule comes from `ledger.posting.apply_movement`.

Order inside the transaction:
1. claim every operation key (`on conflict do nothing`); a key that exists is a repeat,
   and its first result is returned instead of moving money again;
2. lock every account the batch touches, `for update`, in sorted id order (no deadlocks);
3. apply the movements in memory, in request order, through the domain rules;
4. write entries, account totals, transfer rows, outbox rows and results as one static
   statement each over arrays.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg

from ledger.accounts import AccountState, AccountStatus, NormalBalance
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import clearing_account_id
from ledger.limits import POSTING_BATCH_SIZE_MAX
from ledger.posting import Entry, Movement, apply_movement

SYSTEM_TENANT = "__system__"

_OPENS_TRANSFER = frozenset({Movement.TRANSFER, Movement.RESERVE_FUNDS})
_FINISHES_TRANSFER = frozenset({Movement.POST_HOLD, Movement.RELEASE_HOLD})


@dataclass(frozen=True, slots=True)
class PostingRequest:
    """One movement of one transfer, keyed for exactly-once application."""

    operation_key: str
    transfer_id: str
    tenant_id: str
    movement: Movement
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    source_shard: int
    destination_shard: int
    metadata: dict[str, str] = field(default_factory=dict)
    failure_code: str | None = None
    """For `RELEASE_HOLD`: why the transfer failed."""


@dataclass(frozen=True, slots=True)
class PostingResult:
    """The outcome of one request; `replayed` when the operation key had been seen."""

    operation_key: str
    transfer_id: str
    error: LedgerError | None
    replayed: bool
    created_at: datetime | None = None
    """When this batch created the transfer row (None for replays and other movements)."""

    @property
    def ok(self) -> bool:
        """Whether the movement was applied (now or the first time)."""
        return self.error is None


def posting_accounts(request: PostingRequest, shard: int) -> tuple[str, str]:
    """The (debit, credit) accounts a movement touches on `shard`.

    Cross-shard movements post against this shard's clearing account, so each shard
    balances on its own.
    """
    clearing = clearing_account_id(shard, request.currency)
    match request.movement:
        case Movement.TRANSFER:
            return request.debit_account_id, request.credit_account_id
        case Movement.CREDIT_FUNDS:
            return clearing, request.credit_account_id
        case Movement.RESERVE_FUNDS | Movement.POST_HOLD | Movement.RELEASE_HOLD:
            return request.debit_account_id, clearing


def _result_json(error: LedgerError | None) -> str:
    if error is None:
        return json.dumps({"ok": True})
    return json.dumps(
        {"error": {"code": str(error.code), "message": error.message, "param": error.param}}
    )


def _result_from_json(key: str, transfer_id: str, result: dict[str, object]) -> PostingResult:
    error = result.get("error")
    if isinstance(error, dict):
        return PostingResult(
            key,
            transfer_id,
            LedgerError(ErrorCode(error["code"]), str(error["message"]), error.get("param")),
            replayed=True,
        )
    return PostingResult(key, transfer_id, None, replayed=True)


async def _claim_operations(
    conn: asyncpg.Connection, requests: Sequence[PostingRequest]
) -> dict[str, PostingResult]:
    """Insert the operation keys; return the first results of keys seen before."""
    keys = [r.operation_key for r in requests]
    fresh = await conn.fetch(
        "insert into operations (key, transfer_id)"
        " select * from unnest($1::text[], $2::text[]) on conflict do nothing returning key",
        keys,
        [r.transfer_id for r in requests],
    )
    fresh_keys = {row["key"] for row in fresh}
    seen = [k for k in keys if k not in fresh_keys]
    if not seen:
        return {}
    rows = await conn.fetch(
        "select key, transfer_id, result from operations where key = any($1::text[])", seen
    )
    return {r["key"]: _result_from_json(r["key"], r["transfer_id"], r["result"]) for r in rows}


async def _ensure_clearing_accounts(
    conn: asyncpg.Connection, shard: int, currencies: set[str]
) -> None:
    ids = [clearing_account_id(shard, c) for c in sorted(currencies)]
    await conn.execute(
        "insert into accounts (id, tenant_id, slot, currency, normal_balance,"
        " allow_overdraft, is_system)"
        " select id, $3, 0, cur, 'credit', true, true from unnest($1::text[], $2::text[])"
        " as u(id, cur) on conflict (id) do nothing",
        ids,
        sorted(currencies),
        SYSTEM_TENANT,
    )


async def lock_accounts(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, AccountState]:
    """Lock accounts `for update` in sorted id order and load their state."""
    rows = await conn.fetch(
        "select id, tenant_id, currency, normal_balance, allow_overdraft, status,"
        " debits_posted, credits_posted, debits_pending, credits_pending, version"
        " from accounts where id = any($1::text[]) order by id for update",
        sorted(set(ids)),
    )
    return {
        r["id"]: AccountState(
            id=r["id"],
            tenant_id=r["tenant_id"],
            currency=r["currency"],
            normal_balance=NormalBalance(r["normal_balance"]),
            allow_overdraft=r["allow_overdraft"],
            status=AccountStatus(r["status"]),
            debits_posted=r["debits_posted"],
            credits_posted=r["credits_posted"],
            debits_pending=r["debits_pending"],
            credits_pending=r["credits_pending"],
            version=r["version"],
        )
        for r in rows
    }


def _visible(
    accounts: dict[str, AccountState], account_id: str, tenant_id: str
) -> AccountState | None:
    """An account as the tenant may see it: another tenant's account does not exist."""
    account = accounts.get(account_id)
    if account is None:
        return None
    if account.tenant_id not in (tenant_id, SYSTEM_TENANT):
        return None
    return account


async def post_batch(
    conn: asyncpg.Connection, *, shard: int, requests: Sequence[PostingRequest]
) -> list[PostingResult]:
    """Apply a batch of movements on one shard, in one transaction, exactly once each.

    Business refusals are per request (`PostingResult.error`); the others still post.
    Raises only on infrastructure failure, in which case nothing was written.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; the transaction rolled back.
    """
    assert 0 < len(requests) <= POSTING_BATCH_SIZE_MAX
    async with conn.transaction(isolation="read_committed"):
        first_results = await _claim_operations(conn, requests)
        results: dict[str, PostingResult] = dict(first_results)
        todo: list[PostingRequest] = []
        for request in requests:
            if request.operation_key not in results:
                results[request.operation_key] = PostingResult(
                    request.operation_key, request.transfer_id, None, replayed=False
                )
                todo.append(request)
        if not todo:
            return [results[r.operation_key] for r in requests]

        cross = {r.currency for r in todo if r.movement is not Movement.TRANSFER}
        if cross:
            await _ensure_clearing_accounts(conn, shard, cross)
        pairs = [posting_accounts(r, shard) for r in todo]
        accounts = await lock_accounts(conn, [a for pair in pairs for a in pair])

        writes = _BatchWrites()
        for request, (debit_id, credit_id) in zip(todo, pairs, strict=True):
            try:
                entries = apply_movement(
                    request.movement,
                    debit=_visible(accounts, debit_id, request.tenant_id),
                    credit=_visible(accounts, credit_id, request.tenant_id),
                    amount=request.amount,
                    currency=request.currency,
                )
            except LedgerError as error:
                results[request.operation_key] = PostingResult(
                    request.operation_key, request.transfer_id, error, replayed=False
                )
                writes.results.append((request.operation_key, _result_json(error)))
                continue
            writes.add(request, entries)
        created = await writes.flush(conn, accounts)
    for request in todo:
        if request.transfer_id in created:
            results[request.operation_key] = replace(
                results[request.operation_key], created_at=created[request.transfer_id]
            )
    return [results[r.operation_key] for r in requests]


@dataclass(slots=True)
class _BatchWrites:
    """Everything a batch writes, collected so each table gets one statement."""

    entries: list[tuple[str, Entry]] = field(default_factory=list)
    opened: list[PostingRequest] = field(default_factory=list)
    finished: list[PostingRequest] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    results: list[tuple[str, str]] = field(default_factory=list)

    def add(self, request: PostingRequest, entries: list[Entry]) -> None:
        assert entries
        self.entries.extend((request.transfer_id, e) for e in entries)
        self.touched.update(e.account_id for e in entries)
        if request.movement in _OPENS_TRANSFER:
            self.opened.append(request)
        elif request.movement in _FINISHES_TRANSFER:
            self.finished.append(request)
        self.results.append((request.operation_key, _result_json(None)))

    async def flush(
        self, conn: asyncpg.Connection, accounts: dict[str, AccountState]
    ) -> dict[str, datetime]:
        """Write everything; returns the creation time of each new transfer row."""
        created: dict[str, datetime] = {}
        if self.entries:
            await _insert_entries(conn, self.entries, accounts)
            await _update_accounts(conn, [accounts[a] for a in sorted(self.touched)])
        if self.opened:
            created = await _insert_transfers(conn, self.opened)
        if self.finished:
            await _finish_transfers(conn, self.finished)
        await conn.execute(
            "update operations o set result = u.result::jsonb"
            " from unnest($1::text[], $2::text[]) as u(key, result) where o.key = u.key",
            [k for k, _ in self.results],
            [r for _, r in self.results],
        )
        return created


async def _insert_entries(
    conn: asyncpg.Connection, entries: list[tuple[str, Entry]], accounts: dict[str, AccountState]
) -> None:
    await conn.execute(
        "insert into entries (account_id, version, transfer_id, currency, layer, side, amount,"
        " posted_after, available_after)"
        " select * from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::bigint[], $8::bigint[], $9::bigint[])",
        [e.account_id for _, e in entries],
        [e.version_after for _, e in entries],
        [t for t, _ in entries],
        [accounts[e.account_id].currency for _, e in entries],
        [str(e.layer) for _, e in entries],
        [str(e.side) for _, e in entries],
        [e.amount for _, e in entries],
        [e.posted_after for _, e in entries],
        [e.available_after for _, e in entries],
    )


async def _update_accounts(conn: asyncpg.Connection, touched: list[AccountState]) -> None:
    await conn.execute(
        "update accounts a set debits_posted = u.dp, credits_posted = u.cp,"
        " debits_pending = u.dpe, credits_pending = u.cpe, version = u.v"
        " from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],"
        " $6::bigint[]) as u(id, dp, cp, dpe, cpe, v) where a.id = u.id",
        [a.id for a in touched],
        [a.debits_posted for a in touched],
        [a.credits_posted for a in touched],
        [a.debits_pending for a in touched],
        [a.credits_pending for a in touched],
        [a.version for a in touched],
    )


async def _insert_transfers(
    conn: asyncpg.Connection, opened: list[PostingRequest]
) -> dict[str, datetime]:
    reserved = [r.movement is Movement.RESERVE_FUNDS for r in opened]
    rows = await conn.fetch(
        "insert into transfers (id, tenant_id, debit_account_id, credit_account_id, amount,"
        " currency, status, cross_shard, source_shard, destination_shard, saga_step, metadata)"
        " select u.id, u.tenant, u.debit, u.credit, u.amount, u.currency,"
        " case when u.is_cross then 'processing' else 'posted' end, u.is_cross, u.src, u.dst,"
        " case when u.is_cross then 'reserved' end, u.metadata::jsonb"
        " from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],"
        " $7::boolean[], $8::int[], $9::int[], $10::text[])"
        " as u(id, tenant, debit, credit, amount, currency, is_cross, src, dst, metadata)"
        " returning id, created_at",
        [r.transfer_id for r in opened],
        [r.tenant_id for r in opened],
        [r.debit_account_id for r in opened],
        [r.credit_account_id for r in opened],
        [r.amount for r in opened],
        [r.currency for r in opened],
        reserved,
        [r.source_shard for r in opened],
        [r.destination_shard for r in opened],
        [json.dumps(r.metadata) for r in opened],
    )
    holds = [r for r, is_reserve in zip(opened, reserved, strict=True) if is_reserve]
    if holds:
        await conn.execute(
            "insert into saga_outbox (transfer_id, tenant_id, debit_account_id,"
            " credit_account_id, amount, currency, source_shard, destination_shard)"
            " select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],"
            " $6::text[], $7::int[], $8::int[])",
            [r.transfer_id for r in holds],
            [r.tenant_id for r in holds],
            [r.debit_account_id for r in holds],
            [r.credit_account_id for r in holds],
            [r.amount for r in holds],
            [r.currency for r in holds],
            [r.source_shard for r in holds],
            [r.destination_shard for r in holds],
        )
    return {row["id"]: row["created_at"] for row in rows}


async def _finish_transfers(conn: asyncpg.Connection, finished: list[PostingRequest]) -> None:
    posted = [r.movement is Movement.POST_HOLD for r in finished]
    await conn.execute(
        "update transfers t set status = case when u.posted then 'posted' else 'failed' end,"
        " saga_step = case when u.posted then 'posted' else 'released' end,"
        " failure_code = u.failure_code, updated_at = now()"
        " from unnest($1::text[], $2::boolean[], $3::text[]) as u(id, posted, failure_code)"
        " where t.id = u.id",
        [r.transfer_id for r in finished],
        posted,
        [r.failure_code for r in finished],
    )
    await conn.execute(
        "update saga_outbox set finished_at = now() where transfer_id = any($1::text[])",
        [r.transfer_id for r in finished],
    )
