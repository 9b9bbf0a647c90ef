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
from datetime import datetime, timedelta

import asyncpg
from opentelemetry.trace import SpanKind

from ledger.accounts import AccountLimits, AccountState, AccountStatus, NormalBalance, Side
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import availability_account_id, clearing_account_id
from ledger.limits import AVAILABLE_ON_DAYS_MAX, POSTING_BATCH_SIZE_MAX
from ledger.posting import (
    DEBIT_SIDE_CHECKED,
    Entry,
    Movement,
    apply_movement,
    check_movement,
    refusal_of_payee,
)
from ledger.tenants import SYSTEM_TENANT
from ledger.transfers import SettlementKind
from shards import batching, hold_changes
from shards.batch_writes import BatchWrites
from shards.cluster import Shard
from shards.db import Connection
from shards.posting_types import (
    HoldChangeRequest,
    PostingItem,
    PostingRequest,
    PostingResult,
    replayed_result,
)


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
select (select coalesce(array_agg(key), '{{}}') from claimed) as fresh_keys,
       clock_timestamp() as now, locked.*
from (values (1)) as one (n) left join locked on true
"""


_CLAIM_AND_LOCK_HOLDS = hold_changes.claim_and_lock_statement(_ACCOUNT_COLUMNS)


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


# What each account with a daily limit sent or newly held over the 24 hours before $2 (the
# shard's clock, read when the batch locked): each transfer's rows within the window, never
# below zero per transfer (a release gives back only what the window counted). An index
# range per account (migration 0012); read after the accounts are locked, so every
# earlier movement of theirs has committed.
_OUTGOING_24H = """
select account_id as id, sum(greatest(sent, 0)) as sent
from (select account_id, sum(amount) as sent from outgoing
      where account_id = any($1::text[]) and created_at > $2
      group by account_id, transfer_id) as per_transfer
group by account_id
"""


async def _load_outgoing(
    conn: Connection, accounts: dict[str, AccountState], now: datetime
) -> None:
    """Fill `outgoing_24h` of the locked accounts that have a daily limit."""
    limited = [a.id for a in accounts.values() if a.limits.daily_outgoing is not None]
    if not limited:
        return
    for row in await conn.fetch(_OUTGOING_24H, limited, now - timedelta(days=1)):
        accounts[row["id"]].outgoing_24h = row["sent"]


async def _claim_and_lock(
    conn: Connection, requests: Sequence[PostingRequest], account_ids: Sequence[str]
) -> tuple[dict[str, PostingResult], dict[str, AccountState], datetime]:
    """Insert the operation keys, then lock `account_ids`; returns the first results of
    keys seen before, the locked accounts, and the shard's clock.

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
    first_results = await _first_results(conn, requests, set(rows[0]["fresh_keys"]))
    return first_results, accounts, rows[0]["now"]


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
    conn: Connection, shard: int, requests: Sequence[PostingItem]
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
                    "ledgerflow.movements": sorted({_kind(r) for r in requests}),
                    "ledgerflow.batch.refused": sum(1 for r in results if r.error is not None),
                    "ledgerflow.batch.replayed": sum(1 for r in results if r.replayed),
                }
            )
        return results


def _kind(item: PostingItem) -> str:
    """What an item of a batch does, for its span."""
    return str(item.movement) if isinstance(item, PostingRequest) else f"hold_{item.action}"


async def post_batch_on(shard: Shard, requests: Sequence[PostingItem]) -> list[PostingResult]:
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
    payees = await read_accounts(
        shard, tenant_id=tenant_id, ids=[account_id for account_id, _, _ in credits]
    )
    return [
        refusal_of_payee(payees.get(account_id), step, amount=amount, currency=currency)
        for account_id, amount, currency in credits
    ]


async def read_accounts(
    shard: Shard, *, tenant_id: str, ids: Sequence[str]
) -> dict[str, AccountState]:
    """The tenant's accounts among `ids` on `shard`, as one read without a lock shows
    them (for a trial on a copy, never for a posting).

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the shard failed.
    """
    async with shard.connection() as conn:
        rows = await conn.fetch(
            f"select {_ACCOUNT_COLUMNS} from accounts where id = any($1::text[])"
            " and tenant_id = $2",
            sorted(set(ids)),
            tenant_id,
        )
    return {row["id"]: _account(row) for row in rows}


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


async def _post_batch(
    conn: Connection, *, shard: int, requests: Sequence[PostingItem]
) -> list[PostingResult]:
    async with conn.transaction(isolation="read_committed"):
        return await apply_postings(conn, shard=shard, requests=requests)


async def apply_postings(
    conn: Connection, *, shard: int, requests: Sequence[PostingItem]
) -> list[PostingResult]:
    """`post_batch`'s work inside a transaction the caller holds, for a caller that
    changes more rows in the same transaction (the funds timers mark what they did)."""
    assert conn.is_in_transaction()
    first_results, accounts, holds, now = await _lock(conn, shard, requests)
    results: dict[str, PostingResult] = dict(first_results)
    todo: list[PostingItem] = []
    for request in requests:
        if request.operation_key not in results:
            results[request.operation_key] = PostingResult(
                request.operation_key, request.transfer_id, None, replayed=False
            )
            todo.append(request)
    if not todo:
        return [results[r.operation_key] for r in requests]

    missing = {
        account_id: r.currency
        for r in todo
        if isinstance(r, PostingRequest)
        and clearing_side(r.movement) is not None
        and (account_id := system_account(r.movement, shard, r.currency)) not in accounts
    }
    if missing:
        # A system account is created on its first use only, then locked like the rest.
        await _ensure_system_accounts(conn, missing)
        accounts = await lock_accounts(conn, [*accounts, *missing])

    await _load_outgoing(conn, accounts, now)
    reviews = await _load_reviews_waiting(conn, accounts, todo, shard)
    writes = BatchWrites()
    for asked in todo:
        assert asked.tenant_id != SYSTEM_TENANT, "postings act for a customer tenant"
        try:
            if isinstance(asked, HoldChangeRequest):
                _apply_change(asked, holds.get(asked.transfer_id), now, accounts, writes, shard)
                continue
            _check_available_on(asked, now)
            request = _apply_one(asked, accounts, writes, shard, reviews)
        except LedgerError as error:
            results[asked.operation_key] = PostingResult(
                asked.operation_key, asked.transfer_id, error, replayed=False
            )
            writes.refuse(asked.operation_key, error)
            continue
        if request.movement in (Movement.HOLD_FOR_REVIEW, Movement.RESERVE_FOR_REVIEW):
            results[request.operation_key] = replace(
                results[request.operation_key], held_for_review=True
            )
    created, changed = (
        await writes.flush(conn, accounts, shard=shard) if writes.results else ({}, {})
    )
    for request in todo:
        result = results[request.operation_key]
        if result.error is not None:
            continue
        if isinstance(request, HoldChangeRequest):
            result = replace(result, changed=changed[request.transfer_id])
        elif request.transfer_id in created:
            result = replace(result, created_at=created[request.transfer_id])
        results[request.operation_key] = result
    return [results[r.operation_key] for r in requests]


async def _lock(
    conn: Connection, shard: int, requests: Sequence[PostingItem]
) -> tuple[
    dict[str, PostingResult],
    dict[str, AccountState],
    dict[str, hold_changes.Hold],
    datetime,
]:
    """Claim every key and lock what the batch touches: keys, then the transfer rows its
    changes of holds name, then accounts, each sorted; every batch locks in this order.
    Returns (first results of keys seen before, accounts, holds, the shard's clock)."""
    if not any(isinstance(r, HoldChangeRequest) for r in requests):
        plain = [r for r in requests if isinstance(r, PostingRequest)]
        first_results, accounts, now = await _claim_and_lock(
            conn, plain, [a for r in plain for a in _request_accounts(r, shard)]
        )
        return first_results, accounts, {}, now
    named = [
        a for r in requests if isinstance(r, PostingRequest) for a in _request_accounts(r, shard)
    ]
    fresh, now, holds, rows = await hold_changes.claim_and_lock_holds(
        conn, _CLAIM_AND_LOCK_HOLDS, requests, shard=shard, account_ids=named
    )
    first_results = await _first_results(conn, requests, fresh)
    return first_results, {row["id"]: _account(row) for row in rows}, holds, now


def _request_accounts(request: PostingRequest, shard: int) -> tuple[str, ...]:
    """Every account a request touches on `shard`: a delayed credit's debit takes the payee
    too (`DEFER_CREDIT`, in the same item)."""
    if request.movement is Movement.DEFER_DEBIT:
        return (*posting_accounts(request, shard), request.credit_account_id)
    return posting_accounts(request, shard)


def _check_available_on(request: PostingRequest, now: datetime) -> None:
    """Refuse a new delayed credit whose `available_on` is not ahead of the shard's clock,
    or more than `AVAILABLE_ON_DAYS_MAX` days ahead. Checked here, once the operation key
    is known to be new: a retry of a credit that committed is answered with it, whatever
    the clock says now.

    Raises:
        LedgerError(invalid_request).
    """
    available_on = request.available_on
    if available_on is None or request.movement not in _DEFERRING:
        return
    if not now < available_on <= now + timedelta(days=AVAILABLE_ON_DAYS_MAX):
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"available_on must be in the future and at most {AVAILABLE_ON_DAYS_MAX} days ahead",
            "available_on",
        )


_DEFERRING = frozenset({Movement.DEFER_DEBIT, Movement.RESERVE_FUNDS})


def _apply_one(
    asked: PostingRequest,
    accounts: dict[str, AccountState],
    writes: BatchWrites,
    shard: int,
    reviews: dict[str, int],
) -> PostingRequest:
    """Check and apply one movement through the domain rules, into `writes`; returns it as
    applied (routed to review, perhaps). A delayed credit on one shard (`DEFER_DEBIT`) is
    two movements, the payer's debit and the payee's pending credit, both or neither.

    Raises:
        LedgerError: the movement is refused; nothing was changed.
    """
    if asked.movement is not Movement.DEFER_DEBIT:
        return _apply_movement(asked, accounts, writes, shard, reviews)
    credit = replace(
        asked, movement=Movement.DEFER_CREDIT, operation_key=f"{asked.operation_key}:credit"
    )
    # The payee's refusal answers in `REFUSAL_ORDER` with the payer's own (its state before
    # the payer's funds), as across shards: tried on a copy before the debit.
    payee = _visible(accounts, asked.credit_account_id, tenant_id=asked.tenant_id, system=False)
    refusal = refusal_of_payee(
        payee, Movement.PREPARE_CREDIT, amount=asked.amount, currency=asked.currency
    )
    debit = asked if refusal is None else replace(asked, payee_refusal=refusal)
    before = {a: replace(accounts[a]) for a in _request_accounts(asked, shard) if a in accounts}
    both = BatchWrites()
    try:
        _apply_movement(debit, accounts, both, shard, reviews)
        _apply_movement(credit, accounts, both, shard, reviews, keyed=False)
    except LedgerError:
        accounts.update(before)
        raise
    writes.absorb(both)
    return asked


def _apply_movement(
    asked: PostingRequest,
    accounts: dict[str, AccountState],
    writes: BatchWrites,
    shard: int,
    reviews: dict[str, int],
    *,
    keyed: bool = True,
) -> PostingRequest:
    """One movement through the domain rules, into `writes` (its result under its key
    unless it is a step of an item that has the key): routed to review when its debit
    account's `review_above` says so, within the tenant's cap of reviews waiting; returns
    it as applied.

    Raises:
        LedgerError: the movement is refused; nothing was changed.
    """
    request = asked
    debit, credit = _positions(asked, accounts, shard)
    if debit is not None and debit.limits.review_above is not None:
        # Review is a limit: existence, tenancy, state and currency answer first.
        _check_accounts(asked, debit, credit)
        request = _route_review(asked, debit)
        if request.movement in _HELD_FOR_REVIEW:
            _check_reviews_waiting(request, reviews)
    entries = _apply(request, debit, credit)
    writes.add(request, entries, keyed=keyed)
    _count_outgoing(request, debit, writes)
    if request.movement in _HELD_FOR_REVIEW:
        reviews[request.tenant_id] = reviews.get(request.tenant_id, 0) + 1
    return request


_HELD_FOR_REVIEW = frozenset({Movement.HOLD_FOR_REVIEW, Movement.RESERVE_FOR_REVIEW})

_RELEASES = frozenset({Movement.RELEASE, Movement.RELEASE_ACROSS, Movement.RELEASE_HOLD})


def _count_outgoing(
    request: PostingRequest, debit: AccountState | None, writes: BatchWrites
) -> None:
    """Record, for a debit account with a daily limit, money that starts leaving it (counted
    when it is sent or newly held: a transfer, a hold, an increment, a reserve) or held
    money released (given back within the window), for the rolling 24 hours."""
    if debit is None or debit.limits.daily_outgoing is None:
        return
    if request.movement in DEBIT_SIDE_CHECKED:
        writes.outgoing.append((debit.id, request.transfer_id, request.amount))
    elif request.movement in _RELEASES:
        writes.outgoing.append((debit.id, request.transfer_id, -request.amount))


# Per tenant with a transfer bound for review in the batch: a transaction-scoped advisory
# lock (sorted, after every row lock), so two batches cannot both admit the last place,
# then its transfers waiting here, counted up to the cap over the partial index of
# migration 0011.
_REVIEWS_WAITING = """
with locks as materialized (
    select pg_advisory_xact_lock(hashtextextended('ledgerflow.reviews:' || tenant, 0))
    from unnest($1::text[]) as t(tenant)
    order by tenant
)
select t.tenant,
       (select count(*) from (select 1 from transfers
                              where tenant_id = t.tenant and status = 'requires_review'
                              limit $2) as w) as waiting
from unnest($1::text[]) as t(tenant)
where (select count(*) from locks) >= 0
"""


async def _load_reviews_waiting(
    conn: Connection, accounts: dict[str, AccountState], todo: Sequence[PostingItem], shard: int
) -> dict[str, int]:
    """How many transfers wait for review on this shard for each tenant that has one bound
    for review in the batch (a debit above its account's `review_above`), counted under the
    tenant's lock; {} when none is."""
    capped: dict[str, int] = {}
    for r in todo:
        if not isinstance(r, PostingRequest) or r.reviews_waiting_max is None:
            continue
        if r.movement not in (Movement.TRANSFER, Movement.RESERVE_FUNDS):
            continue
        debit = accounts.get(posting_accounts(r, shard)[0])
        threshold = None if debit is None else debit.limits.review_above
        if threshold is not None and r.amount > threshold:
            capped[r.tenant_id] = max(capped.get(r.tenant_id, 0), r.reviews_waiting_max)
    if not capped:
        return {}
    tenants = sorted(capped)
    rows = await conn.fetch(_REVIEWS_WAITING, tenants, max(capped.values()))
    return {row["tenant"]: row["waiting"] for row in rows}


def _check_reviews_waiting(request: PostingRequest, reviews: dict[str, int]) -> None:
    """Refuse a transfer bound for review when its tenant has as many waiting here as it
    may: each waits in a workflow with a long timer on the Temporal server every tenant
    shares, so no tenant may make them common.

    Raises:
        LedgerError(review_queue_full).
    """
    cap = request.reviews_waiting_max
    if cap is not None and reviews.get(request.tenant_id, 0) >= cap:
        raise LedgerError(
            ErrorCode.REVIEW_QUEUE_FULL,
            f"{cap} of this tenant's transfers already wait for review on this shard; decide"
            " some first",
            "amount",
        )


def _apply_change(
    change: HoldChangeRequest,
    hold: hold_changes.Hold | None,
    now: datetime,
    accounts: dict[str, AccountState],
    writes: BatchWrites,
    shard: int,
) -> None:
    """Plan and apply one change of a hold, into `writes`: each of its movements through
    the domain rules, the row it leaves, its event and its follow-ups.

    An increment keeps the rules of a new hold: above the debit account's `review_above`
    in total (what the hold holds with the increment) it is refused, like a hold that
    size; the daily limit, the floor and `max_balance` count it as new money held.

    Raises:
        LedgerError: the change is refused; nothing was changed.
    """
    planned = hold_changes.plan(change, hold, now=now)
    assert hold is not None
    applied: list[tuple[PostingRequest, list[Entry]]] = []
    for step in planned.steps:
        debit, credit = _positions(step, accounts, shard)
        if step.movement in _INCREMENTS:
            assert len(planned.steps) == 1, "an increment is one movement, so all or none"
            _check_accounts(step, debit, credit)
            assert debit is not None
            _check_review_total(debit, planned.plan.amount)
        entries = _apply(step, debit, credit)
        applied.append((step, entries))
    for step, entries in applied:
        writes.add(step, entries, keyed=False)
        _count_outgoing(step, accounts.get(step.debit_account_id), writes)
    event = None if planned.plan.event is None else str(planned.plan.event)
    writes.change(change.operation_key, planned.after, event, planned.followups)
    if change.request_key is not None:
        writes.decided_under.append((change.request_key, change.transfer_id))
    hold_changes.applied(hold, planned.after)


_INCREMENTS = frozenset({Movement.INCREASE_HOLD, Movement.INCREASE_ACROSS})


def _positions(
    request: PostingRequest, accounts: dict[str, AccountState], shard: int
) -> tuple[AccountState | None, AccountState | None]:
    """The (debit, credit) accounts of a movement on `shard`, as its positions may see
    them (`_visible`)."""
    debit_id, credit_id = posting_accounts(request, shard)
    system = clearing_side(request.movement)
    return (
        _visible(accounts, debit_id, tenant_id=request.tenant_id, system=system is Side.DEBIT),
        _visible(accounts, credit_id, tenant_id=request.tenant_id, system=system is Side.CREDIT),
    )


def _check_accounts(
    request: PostingRequest, debit: AccountState | None, credit: AccountState | None
) -> None:
    """The movement's rules before its limits (existence, state, currency), for a limit the
    posting path checks itself (review)."""
    check_movement(
        request.movement,
        debit=debit,
        credit=credit,
        amount=request.amount,
        currency=request.currency,
        payee_refusal=request.payee_refusal,
    )


def _apply(
    request: PostingRequest, debit: AccountState | None, credit: AccountState | None
) -> list[Entry]:
    """Check and apply the movement through the domain rules (`ledger.posting`)."""
    return apply_movement(
        request.movement,
        debit=debit,
        credit=credit,
        amount=request.amount,
        currency=request.currency,
        payee_refusal=request.payee_refusal,
    )


def _check_review_total(debit: AccountState, total: int) -> None:
    """Refuse an increment that takes what its hold debits in total above the debit
    account's `review_above`: review cannot hold a hold, so the raised hold is refused as a
    new hold of that size would be.

    Raises:
        LedgerError(review_not_supported).
    """
    threshold = debit.limits.review_above
    if threshold is not None and total > threshold:
        raise LedgerError(
            ErrorCode.REVIEW_NOT_SUPPORTED,
            f"the hold would debit {total} in all, above the debit account's review_above;"
            " a hold is not held for review, so it cannot grow past it",
            "amount",
        )


async def _first_results(
    conn: Connection, requests: Sequence[PostingItem], fresh: set[str]
) -> dict[str, PostingResult]:
    """The first results of the keys among `requests` that were not claimed now."""
    seen = sorted({r.operation_key for r in requests} - fresh)
    if not seen:
        return {}
    replays = await conn.fetch(
        "select key, transfer_id, result from operations where key = any($1::text[])", seen
    )
    return {r["key"]: replayed_result(r["key"], r["transfer_id"], r["result"]) for r in replays}


async def recover_batch(
    conn: Connection, shard: int, requests: Sequence[PostingItem]
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
    conn: Connection, requests: Sequence[PostingItem]
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
