"""The posting SQL: apply a batch of movements on one shard in one transaction.

Single-shard transfers, saga steps and group-committed batches all come through
`post_batch`, and every balance rule comes from `ledger.posting.apply_movement`.

Order inside the transaction:
1. claim every operation key (`on conflict do nothing`); a key that exists is a repeat,
   and its first result is returned instead of moving money again;
2. lock every account the batch touches, `for update`, in sorted id order (no deadlocks),
   in the same statement as step 1;
3. apply the movements in memory, in request order, through the domain rules;
4. write entries, account totals, transfer rows, outbox rows and results in one static
   statement over arrays (`shards.batch_writes`), so the locks are held for one round trip.
"""

from collections.abc import Sequence
from dataclasses import replace

import asyncpg
from opentelemetry.trace import SpanKind

from ledger.accounts import AccountLimits, AccountState, AccountStatus, NormalBalance, Side
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import availability_account_id, clearing_account_id
from ledger.limits import POSTING_BATCH_SIZE_MAX
from ledger.posting import Movement, apply_movement, check_movement, refusal_of_payee
from ledger.tenants import SYSTEM_TENANT
from ledger.transfers import SettlementKind
from shards import batching
from shards.batch_writes import BatchWrites
from shards.cluster import Shard
from shards.db import Connection
from shards.posting_types import PostingRequest, PostingResult, replayed_result


def posting_accounts(request: PostingRequest, shard: int) -> tuple[str, str]:
    """The (debit, credit) accounts a movement touches on `shard`.

    Cross-shard movements post against this shard's clearing account, so each shard
    balances on its own. The clearing account takes the position `clearing_side` names;
    the request's own fields fill only the other one.
    """
    clearing = system_account(request.movement, shard, request.currency)
    match clearing_side(request.movement):
        case None:
            return request.debit_account_id, request.credit_account_id
        case Side.DEBIT:
            return clearing, request.credit_account_id
        case Side.CREDIT:
            return request.debit_account_id, clearing


def system_account(movement: Movement, shard: int, currency: str) -> str:
    """The system account a movement posts against on `shard`: the availability account for
    delayed credits, the clearing account for everything else that takes one."""
    if movement in _AVAILABILITY_MOVEMENTS:
        return availability_account_id(shard, currency)
    return clearing_account_id(shard, currency)


_AVAILABILITY_MOVEMENTS = frozenset(
    {Movement.DEFER_DEBIT, Movement.DEFER_CREDIT, Movement.MAKE_AVAILABLE}
)


def clearing_side(movement: Movement) -> Side | None:
    """Which side of a movement the shard's system account (`system_account`) takes, if
    any."""
    match movement:
        case (
            Movement.TRANSFER
            | Movement.HOLD
            | Movement.HOLD_FOR_REVIEW
            | Movement.INCREASE_HOLD
            | Movement.CAPTURE
            | Movement.RELEASE
        ):
            return None
        case (
            Movement.CREDIT_FUNDS
            | Movement.PREPARE_CREDIT
            | Movement.POST_CREDIT
            | Movement.VOID_CREDIT
            | Movement.DEFER_CREDIT
            | Movement.MAKE_AVAILABLE
            | Movement.RAISE_CREDIT
        ):
            return Side.DEBIT
        case (
            Movement.RESERVE_FUNDS
            | Movement.POST_HOLD
            | Movement.RELEASE_HOLD
            | Movement.DEFER_DEBIT
            | Movement.RESERVE_FOR_REVIEW
            | Movement.CAPTURE_ACROSS
            | Movement.RELEASE_ACROSS
            | Movement.INCREASE_ACROSS
        ):
            return Side.CREDIT


_ACCOUNT_COLUMNS = (
    "id, tenant_id, currency, normal_balance, allow_overdraft, status,"
    " debits_posted, credits_posted, debits_pending, credits_pending, version,"
    " min_available, max_balance, daily_outgoing, review_above"
)

# Steps 1 and 2 in one round trip. The scalar subquery on `claimed` makes the insert finish
# before the first account is locked, so every batch takes operation keys first, then
# accounts: the same order as two statements would.
_CLAIM_AND_LOCK = f"""
with claimed as (
    insert into operations (key, transfer_id)
    select * from unnest($1::text[], $2::text[])
    on conflict do nothing
    returning key
), locked as materialized (
    select {_ACCOUNT_COLUMNS} from accounts
    where id = any($3::text[]) and (select count(*) from claimed) >= 0
    order by id
    for update
)
select (select coalesce(array_agg(key), '{{}}') from claimed) as fresh_keys, locked.*
from (values (1)) as one (n) left join locked on true
"""


def _account(row: asyncpg.Record) -> AccountState:
    return AccountState(
        id=row["id"],
        tenant_id=row["tenant_id"],
        currency=row["currency"],
        normal_balance=NormalBalance(row["normal_balance"]),
        allow_overdraft=row["allow_overdraft"],
        status=AccountStatus(row["status"]),
        debits_posted=row["debits_posted"],
        credits_posted=row["credits_posted"],
        debits_pending=row["debits_pending"],
        credits_pending=row["credits_pending"],
        version=row["version"],
        limits=AccountLimits(
            min_available=row["min_available"],
            max_balance=row["max_balance"],
            daily_outgoing=row["daily_outgoing"],
            review_above=row["review_above"],
        ),
    )


# What each account sent over the last 24 hours: its transfers as debit account, counted
# at what they moved or hold (a failed transfer nothing; a hold that ended, what was
# captured; a hold across shards its saga is still opening, all of it). Read after the
# accounts are locked, so every earlier debit has committed.
_OUTGOING_24H = """
select debit_account_id as id,
       sum(case when status = 'failed' then 0
                when expires_at is not null and status not in ('pending', 'processing')
                    then captured_amount
                else amount end) as sent
from transfers
where debit_account_id = any($1::text[]) and created_at > clock_timestamp() - interval '1 day'
group by debit_account_id
"""


async def _load_outgoing(conn: Connection, accounts: dict[str, AccountState]) -> None:
    """Fill `outgoing_24h` of the locked accounts that have a daily limit."""
    limited = [a.id for a in accounts.values() if a.limits.daily_outgoing is not None]
    if not limited:
        return
    for row in await conn.fetch(_OUTGOING_24H, limited):
        accounts[row["id"]].outgoing_24h = row["sent"]


async def _claim_and_lock(
    conn: Connection, requests: Sequence[PostingRequest], account_ids: Sequence[str]
) -> tuple[dict[str, PostingResult], dict[str, AccountState]]:
    """Insert the operation keys, then lock `account_ids`; returns the first results of
    keys seen before, and the locked accounts.

    Keys are inserted in sorted order: a key another open transaction inserted makes this
    insert wait for it, and a common order keeps two batches that share keys (concurrent
    retries) from waiting on each other in a cycle. Accounts are locked in sorted id order.
    The accounts of repeated requests are locked too (they are known to be repeats only
    once the insert ran), which costs nothing but the lock.
    """
    claims = sorted({r.operation_key: r.transfer_id for r in reversed(requests)}.items())
    rows = await conn.fetch(
        _CLAIM_AND_LOCK,
        [key for key, _ in claims],
        [transfer_id for _, transfer_id in claims],
        sorted(set(account_ids)),
    )
    accounts = {row["id"]: _account(row) for row in rows if row["id"] is not None}
    fresh_keys = set(rows[0]["fresh_keys"])
    seen = [key for key, _ in claims if key not in fresh_keys]
    if not seen:
        return {}, accounts
    replays = await conn.fetch(
        "select key, transfer_id, result from operations where key = any($1::text[])", seen
    )
    first_results = {
        r["key"]: replayed_result(r["key"], r["transfer_id"], r["result"]) for r in replays
    }
    return first_results, accounts


async def _ensure_system_accounts(conn: Connection, missing: dict[str, str]) -> None:
    """Create the system accounts `missing` names (id → currency) that do not exist yet."""
    ids = sorted(missing)
    await conn.execute(
        "insert into accounts (id, tenant_id, slot, currency, normal_balance,"
        " allow_overdraft, is_system)"
        " select id, $3, 0, cur, 'credit', true, true from unnest($1::text[], $2::text[])"
        " as u(id, cur) on conflict (id) do nothing",
        ids,
        [missing[i] for i in ids],
        SYSTEM_TENANT,
    )


async def lock_accounts(conn: Connection, ids: Sequence[str]) -> dict[str, AccountState]:
    """Lock accounts `for update` in sorted id order and load their state."""
    rows = await conn.fetch(
        f"select {_ACCOUNT_COLUMNS} from accounts where id = any($1::text[])"
        " order by id for update",
        sorted(set(ids)),
    )
    return {r["id"]: _account(r) for r in rows}


def _visible(
    accounts: dict[str, AccountState], account_id: str, *, tenant_id: str, system: bool
) -> AccountState | None:
    """An account as this position of a posting may see it.

    A position the request's fields fill sees only the tenant's own accounts: another
    tenant's account, and every system account, does not exist there. The position the
    clearing account takes sees only system accounts.
    """
    account = accounts.get(account_id)
    if account is None:
        return None
    if system:
        assert account.tenant_id == SYSTEM_TENANT, f"{account_id} is not a system account"
        return account
    if account.tenant_id != tenant_id:
        return None
    return account


_NOT_REVIEWABLE = frozenset(
    {
        Movement.HOLD,
        Movement.DEFER_DEBIT,
        Movement.INCREASE_HOLD,
        Movement.INCREASE_ACROSS,
    }
)
"""Movements that open (or raise) money leaving an account that review cannot hold (a hold
of its own, a delayed credit): above `review_above` they are refused, not sent on
unreviewed."""


def _route_review(request: PostingRequest, debit: AccountState) -> PostingRequest:
    """A transfer above its debit account's `review_above` waits for review: on one shard
    as a hold (`HOLD_FOR_REVIEW`), across shards as a reserve no saga takes until it is
    approved (`RESERVE_FOR_REVIEW`).

    Raises:
        LedgerError(review_not_supported): a movement above the limit that review cannot
            hold (a hold of its own, a delayed credit, an increment, a leg of an atomic
            batch).
    """
    threshold = debit.limits.review_above
    if threshold is None or request.amount <= threshold:
        return request
    if request.movement is Movement.TRANSFER:
        return replace(request, movement=Movement.HOLD_FOR_REVIEW)
    if (
        request.movement is Movement.RESERVE_FUNDS
        and request.settlement_kind is SettlementKind.TRANSFER
        # A leg of an atomic batch is settled by its batch's workflow, which would post it
        # unreviewed: it is refused like a hold.
        and request.workflow_id is None
    ):
        return replace(request, movement=Movement.RESERVE_FOR_REVIEW)
    if request.movement in _NOT_REVIEWABLE or request.movement is Movement.RESERVE_FUNDS:
        raise LedgerError(
            ErrorCode.REVIEW_NOT_SUPPORTED,
            f"{request.amount} is above the debit account's review_above ({threshold}); only"
            " a plain transfer is held for review, a hold or a delayed credit is refused",
            "amount",
        )
    return request


async def post_batch(
    conn: Connection, shard: int, requests: Sequence[PostingRequest]
) -> list[PostingResult]:
    """Apply a batch of movements on one shard, in one transaction, exactly once each.

    The signature is a `shards.batching.BatchRunner`'s: the group committer runs it as is.

    Business refusals are per request (`PostingResult.error`); the others still post.
    Raises only on infrastructure failure, in which case nothing was written.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; the transaction rolled back.
    """
    assert 0 < len(requests) <= POSTING_BATCH_SIZE_MAX
    with batching.span("post_batch", kind=SpanKind.CLIENT) as span:
        results = await _post_batch(conn, shard=shard, requests=requests)
        if span.is_recording():
            # Only a recorded span pays for its attributes: posting is the hot path.
            span.set_attributes(
                {
                    "db.system.name": "postgresql",
                    "db.operation.name": "post_batch",
                    "ledgerflow.shard": shard,
                    "ledgerflow.batch.size": len(requests),
                    "ledgerflow.movements": sorted({str(r.movement) for r in requests}),
                    "ledgerflow.batch.refused": sum(1 for r in results if r.error is not None),
                    "ledgerflow.batch.replayed": sum(1 for r in results if r.replayed),
                }
            )
        return results


async def post_batch_on(shard: Shard, requests: Sequence[PostingRequest]) -> list[PostingResult]:
    """`post_batch` on a connection from `shard`'s pool, for callers outside `shards`.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed; the
            transaction rolled back.
    """
    async with shard.connection() as conn:
        return await post_batch(conn, shard.index, requests)


async def payee_refusals(
    shard: Shard, *, tenant_id: str, credits: Sequence[tuple[str, int, str]], step: Movement
) -> list[LedgerError | None]:
    """What `shard` would refuse each credit (account id, amount, currency) of a transfer
    across shards for now, tried through `ledger.posting.refusal_of_payee` on the payee's
    state as one unlocked read shows it: another tenant's account, or a system account, is
    a missing one.

    A reserve carries the answer (`PostingRequest.payee_refusal`), so a transfer across
    shards is answered in `REFUSAL_ORDER` like one on a single shard: its payee's
    existence and tenancy before its payer's funds.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        rows = await conn.fetch(
            f"select {_ACCOUNT_COLUMNS} from accounts where id = any($1::text[])"
            " and tenant_id = $2",
            sorted({account_id for account_id, _, _ in credits}),
            tenant_id,
        )
    payees = {row["id"]: _account(row) for row in rows}
    return [
        refusal_of_payee(payees.get(account_id), step, amount=amount, currency=currency)
        for account_id, amount, currency in credits
    ]


async def with_payee_check(shard: Shard, request: PostingRequest) -> PostingRequest:
    """A reserve across shards with what its payee's shard (`shard`) would refuse the
    credit for now (`payee_refusals`).

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the payee's shard failed.
    """
    assert request.movement is Movement.RESERVE_FUNDS
    step = (
        Movement.CREDIT_FUNDS
        if request.settlement_kind is SettlementKind.TRANSFER
        else Movement.PREPARE_CREDIT
    )
    (refusal,) = await payee_refusals(
        shard,
        tenant_id=request.tenant_id,
        credits=[(request.credit_account_id, request.amount, request.currency)],
        step=step,
    )
    return request if refusal is None else replace(request, payee_refusal=refusal)


async def would_refuse(shard: Shard, request: PostingRequest) -> LedgerError | None:
    """The refusal `request` would meet on `shard` now, or None: it is applied through the
    posting path in a transaction that is then rolled back, so nothing is written.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        trial = conn.transaction(isolation="read_committed")
        await trial.start()
        try:
            (result,) = await apply_postings(conn, shard=shard.index, requests=[request])
        finally:
            await trial.rollback()
    return result.error


async def _post_batch(
    conn: Connection, *, shard: int, requests: Sequence[PostingRequest]
) -> list[PostingResult]:
    async with conn.transaction(isolation="read_committed"):
        return await apply_postings(conn, shard=shard, requests=requests)


async def apply_postings(
    conn: Connection, *, shard: int, requests: Sequence[PostingRequest]
) -> list[PostingResult]:
    """`post_batch`'s work inside a transaction the caller holds, for a caller that
    changes more rows in the same transaction (a hold's capture updates the transfer)."""
    assert conn.is_in_transaction()
    pairs = [posting_accounts(r, shard) for r in requests]
    first_results, accounts = await _claim_and_lock(
        conn, requests, [a for pair in pairs for a in pair]
    )
    results: dict[str, PostingResult] = dict(first_results)
    todo: list[tuple[PostingRequest, tuple[str, str]]] = []
    for request, pair in zip(requests, pairs, strict=True):
        if request.operation_key not in results:
            results[request.operation_key] = PostingResult(
                request.operation_key, request.transfer_id, None, replayed=False
            )
            todo.append((request, pair))
    if not todo:
        return [results[r.operation_key] for r in requests]

    missing = {
        account_id: r.currency
        for r, _ in todo
        if clearing_side(r.movement) is not None
        and (account_id := system_account(r.movement, shard, r.currency)) not in accounts
    }
    if missing:
        # A system account is created on its first use only, then locked like the rest.
        await _ensure_system_accounts(conn, missing)
        accounts = await lock_accounts(conn, [a for _, pair in todo for a in pair])

    await _load_outgoing(conn, accounts)
    writes = BatchWrites()
    for asked, (debit_id, credit_id) in todo:
        assert asked.tenant_id != SYSTEM_TENANT, "postings act for a customer tenant"
        system = clearing_side(asked.movement)
        request = asked
        debit = _visible(accounts, debit_id, tenant_id=asked.tenant_id, system=system is Side.DEBIT)
        credit = _visible(
            accounts, credit_id, tenant_id=asked.tenant_id, system=system is Side.CREDIT
        )
        try:
            if debit is not None and debit.limits.review_above is not None:
                # Review is a limit: existence, tenancy, state and currency answer first.
                check_movement(
                    asked.movement,
                    debit=debit,
                    credit=credit,
                    amount=asked.amount,
                    currency=asked.currency,
                    payee_refusal=asked.payee_refusal,
                )
                request = _route_review(asked, debit)
            entries = apply_movement(
                request.movement,
                debit=debit,
                credit=credit,
                amount=request.amount,
                currency=request.currency,
                payee_refusal=request.payee_refusal,
            )
        except LedgerError as error:
            results[request.operation_key] = PostingResult(
                request.operation_key, request.transfer_id, error, replayed=False
            )
            writes.refuse(request, error)
            continue
        writes.add(request, entries)
        if request.movement in (Movement.HOLD_FOR_REVIEW, Movement.RESERVE_FOR_REVIEW):
            results[request.operation_key] = replace(
                results[request.operation_key], held_for_review=True
            )
    created = await writes.flush(conn, accounts, shard=shard) if writes.results else {}
    for request, _ in todo:
        if request.transfer_id in created:
            results[request.operation_key] = replace(
                results[request.operation_key], created_at=created[request.transfer_id]
            )
    return [results[r.operation_key] for r in requests]


async def recover_batch(
    conn: Connection, shard: int, requests: Sequence[PostingRequest]
) -> list[PostingResult] | None:
    """Find out whether a batch whose transaction failed without a clear answer (the
    connection lost or timed out, perhaps during COMMIT) was committed.

    It claims the batch's operation keys again, in a transaction it then rolls back. An
    insert of a key that a still-open transaction wrote waits for it, so the answer is
    final: when every key exists, the batch (or an earlier attempt of each request)
    committed, and the first results are returned as replays; when any key was free, the
    batch wrote nothing, and None says a retry is safe.

    Raises:
        asyncpg.PostgresError, OSError, TimeoutError: the shard still fails; the outcome
            stays unknown.
    """
    assert 0 < len(requests) <= POSTING_BATCH_SIZE_MAX
    with batching.span("recover_batch", kind=SpanKind.CLIENT) as span:
        if span.is_recording():
            span.set_attributes({"ledgerflow.shard": shard, "ledgerflow.batch.size": len(requests)})
        return await _recover_batch(conn, requests)


async def _recover_batch(
    conn: Connection, requests: Sequence[PostingRequest]
) -> list[PostingResult] | None:
    claims = sorted({r.operation_key: r.transfer_id for r in requests}.items())
    probe = conn.transaction(isolation="read_committed")
    await probe.start()
    try:
        free = await conn.fetchval(
            "with claimed as (insert into operations (key, transfer_id)"
            " select * from unnest($1::text[], $2::text[]) on conflict do nothing returning key)"
            " select count(*) from claimed",
            [key for key, _ in claims],
            [transfer_id for _, transfer_id in claims],
        )
    finally:
        await probe.rollback()
    if free:
        return None
    rows = await conn.fetch(
        "select key, transfer_id, result from operations where key = any($1::text[])",
        [key for key, _ in claims],
    )
    first = {r["key"]: replayed_result(r["key"], r["transfer_id"], r["result"]) for r in rows}
    return [first[r.operation_key] for r in requests]
