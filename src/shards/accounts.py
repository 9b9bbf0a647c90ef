"""Account reads and writes that move no money, and the ids of new accounts."""

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ledger import ids
from ledger.accounts import (
    NO_LIMITS,
    AccountLimits,
    AccountStatus,
    Balance,
    NormalBalance,
    balance_of,
    check_status_change,
)
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import slot_of
from shards.db import Connection
from shards.pages import fetch_page


def new_account_id() -> str:
    """A fresh `acct_<ulid>`, made now."""
    return ids.account_id(time.time_ns() // 1_000_000, secrets.token_bytes(ids.ENTROPY_BYTES))


def account_id_for(operation_key: str, first_seen_at: datetime) -> str:
    """The id of the account an idempotent request opens: the same for every attempt of
    the request, so a retry after a crash finds the account the first attempt created
    instead of opening a second one. It sorts by when the request was first seen, and its
    randomness comes from the operation key, which is unique per API key and request."""
    millis = int(first_seen_at.timestamp() * 1000)
    return ids.account_id(millis, ids.key_entropy(operation_key))


_COLUMNS = (
    "id, tenant_id, currency, normal_balance, allow_overdraft, status, debits_posted,"
    " credits_posted, debits_pending, credits_pending, version, metadata, created_at,"
    " min_available, max_balance, daily_outgoing, review_above"
)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as stored, with its balance folded."""

    id: str
    tenant_id: str
    currency: str
    normal_balance: NormalBalance
    allow_overdraft: bool
    status: AccountStatus
    balance: Balance
    version: int
    metadata: dict[str, str]
    created_at: datetime
    shard: int
    limits: AccountLimits = NO_LIMITS


def _record(row: asyncpg.Record, shard: int) -> AccountRecord:
    normal = NormalBalance(row["normal_balance"])
    return AccountRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        currency=row["currency"],
        normal_balance=normal,
        allow_overdraft=row["allow_overdraft"],
        status=AccountStatus(row["status"]),
        balance=balance_of(
            normal,
            debits_posted=row["debits_posted"],
            credits_posted=row["credits_posted"],
            debits_pending=row["debits_pending"],
            credits_pending=row["credits_pending"],
        ),
        version=row["version"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        shard=shard,
        limits=AccountLimits(
            min_available=row["min_available"],
            max_balance=row["max_balance"],
            daily_outgoing=row["daily_outgoing"],
            review_above=row["review_above"],
        ),
    )


async def insert_account(
    conn: Connection,
    *,
    shard: int,
    account_id: str,
    tenant_id: str,
    currency: str,
    normal_balance: NormalBalance,
    allow_overdraft: bool,
    metadata: dict[str, str],
    limits: AccountLimits = NO_LIMITS,
) -> AccountRecord:
    """Create an account with zero balances; an account that already has this id (the
    first attempt of the same idempotent request) is returned as it is now."""
    row = await conn.fetchrow(
        "with new as ("
        " insert into accounts (id, tenant_id, slot, currency, normal_balance, allow_overdraft,"
        " metadata, min_available, max_balance, daily_outgoing, review_above)"
        " values ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11)"
        f" on conflict (id) do nothing returning {_COLUMNS})"
        f" select {_COLUMNS} from new"
        f" union all select {_COLUMNS} from accounts where id = $1 and tenant_id = $2",
        account_id,
        tenant_id,
        slot_of(account_id),
        currency,
        str(normal_balance),
        allow_overdraft,
        json.dumps(metadata),
        limits.min_available,
        limits.max_balance,
        limits.daily_outgoing,
        limits.review_above,
    )
    assert row is not None
    return _record(row, shard)


async def fetch_account(
    conn: Connection, *, shard: int, tenant_id: str, account_id: str
) -> AccountRecord:
    """One of the tenant's accounts.

    Raises:
        LedgerError(account_not_found): no such account for this tenant.
    """
    row = await conn.fetchrow(
        f"select {_COLUMNS} from accounts where id = $1 and tenant_id = $2",
        account_id,
        tenant_id,
    )
    if row is None:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, f"no such account: {account_id}", "id")
    return _record(row, shard)


async def list_accounts(
    conn: Connection,
    *,
    shard: int,
    tenant_id: str,
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> list[AccountRecord]:
    """A page of the tenant's accounts on one shard, newest first (ids are ULIDs).

    `after_id` continues towards older accounts; `before_id` towards newer ones (returned
    oldest first, so the caller can take the closest ones).
    """
    rows = await fetch_page(
        conn,
        select=f"select {_COLUMNS} from accounts where tenant_id = $1",
        key="id",
        owner=tenant_id,
        after=after_id,
        before=before_id,
        limit=limit,
    )
    return [_record(r, shard) for r in rows]


async def set_account_status(
    conn: Connection,
    *,
    shard: int,
    tenant_id: str,
    account_id: str,
    status: AccountStatus,
) -> AccountRecord:
    """Freeze or close an account. Closing needs a zero balance and nothing pending.

    Raises:
        LedgerError(account_not_found): no such account for this tenant.
        LedgerError(account_closed): the account is closed already; closing is final.
        LedgerError(account_not_empty): closing an account that still holds money.
    """
    async with conn.transaction():
        current = await conn.fetchrow(
            f"select {_COLUMNS} from accounts where id = $1 and tenant_id = $2 for update",
            account_id,
            tenant_id,
        )
        if current is None:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, f"no such account: {account_id}", "id")
        record = _record(current, shard)
        check_status_change(account_id, record.status, status, record.balance)
        row = await conn.fetchrow(
            f"update accounts set status = $2 where id = $1 returning {_COLUMNS}",
            account_id,
            str(status),
        )
    assert row is not None
    return _record(row, shard)


async def set_limits(
    conn: Connection, *, shard: int, tenant_id: str, account_id: str, limits: AccountLimits
) -> AccountRecord:
    """Replace an account's limits; they apply to movements from the next one on (a balance
    already past a new `max_balance` or daily limit stays, and only movements that take it
    further are refused). The floor is the exception when the account is overdrawn: new
    limits are refused when what the account has available is below zero and below their
    floor, so an overdraft line in use cannot be taken away, and no account ever stands
    below the lower of its floor and zero (`verify` holds every account to it). A positive
    floor above what an account has is taken, as at the account's opening: movements then
    may only raise it.

    Raises:
        LedgerError(account_not_found): no such account for this tenant.
        LedgerError(limits_below_balance): the account is overdrawn past the new floor.
    """
    # One statement under the row's lock: the check and the change see the same balance.
    row = await conn.fetchrow(
        f"""with target as (
            select * from accounts where id = $1 and tenant_id = $2 for update
        ), changed as (
            update accounts a set min_available = $3::bigint, max_balance = $4,
                                  daily_outgoing = $5, review_above = $6
            from target t
            where a.id = t.id
              and (coalesce($3::bigint, case when t.allow_overdraft then null else 0 end) is null
                   or {_AVAILABLE} >= least(coalesce($3::bigint, 0), 0))
            returning a.*
        )
        select (select count(*) from target) as found, c.* from (values (1)) as one (n)
        left join changed c on true""",
        account_id,
        tenant_id,
        limits.min_available,
        limits.max_balance,
        limits.daily_outgoing,
        limits.review_above,
    )
    assert row is not None
    if not row["found"]:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, f"no such account: {account_id}", "id")
    if row["id"] is None:
        raise LedgerError(
            ErrorCode.LIMITS_BELOW_BALANCE,
            f"account {account_id} has less available than the new floor; bring it above"
            " the floor first",
            "min_available",
        )
    return _record(row, shard)


# What an account has available (`ledger.accounts.balance_of`), of a row aliased `t`.
_AVAILABLE = """(case when t.normal_balance = 'credit'
    then t.credits_posted - t.debits_posted - t.debits_pending
    else t.debits_posted - t.credits_posted - t.credits_pending end)"""


@dataclass(frozen=True, slots=True)
class BalanceAt:
    """An account's balance as its entries stood at an instant: after entry `version`
    (0 when the account had no entry yet)."""

    version: int
    balance: Balance


# The fallback sums the pending layer for entries written before migration 0004, which
# recorded no `pending_after`: the incoming side is credits for a credit-normal account.
_BALANCE_AT = """
with v as (select entry_version_at($1, $2) as version)
select v.version, e.posted_after, e.available_after,
       coalesce(e.pending_after, (
           select coalesce(sum(p.amount), 0) from entries p
           where p.account_id = $1 and p.version <= v.version and p.layer = 'pending'
             and p.side = case when $3 = 'credit' then 'credit' else 'debit' end
       )) as pending_after
from v left join entries e on e.account_id = $1 and e.version = v.version
"""


async def balance_at(conn: Connection, *, account: AccountRecord, at: datetime) -> BalanceAt:
    """The balance of `account` (already checked to be the caller's) at instant `at`.

    Entry times never go backwards within an account (migration 0004), so the balance at
    `at` is the one recorded with the last entry stamped at or before it.
    """
    row = await conn.fetchrow(_BALANCE_AT, account.id, at, str(account.normal_balance))
    assert row is not None
    if row["version"] == 0:
        return BalanceAt(version=0, balance=Balance(posted=0, pending=0, held=0))
    posted = row["posted_after"]
    return BalanceAt(
        version=row["version"],
        balance=Balance(
            posted=posted, pending=row["pending_after"], held=posted - row["available_after"]
        ),
    )
