"""Accounts: create, read, list, freeze and close, their entries and past balances."""

import asyncio
from datetime import UTC, datetime

from api.auth import Principal
from api.idempotency import Attempt
from api.models import AccountCreate, AccountOut, AvailabilityOut, BalanceAtOut, EntryOut, LimitsIn
from api.pagination import Cursor, check_cursors, merged_page
from api.presenters import account_out, entry_out
from ledger.accounts import AccountLimits, AccountStatus
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import entry_id, is_account_id
from shards import accounts as account_rows
from shards import availability as availability_rows
from shards import transfers as transfer_rows
from shards.accounts import AccountRecord, account_id_for, new_account_id
from shards.cluster import Shard, ShardCluster
from shards.db import Connection


def _not_found(account_id: str) -> LedgerError:
    return LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, f"no such account: {account_id}", "id")


class AccountService:
    """Account operations for one tenant at a time."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    async def create(
        self, *, principal: Principal, body: AccountCreate, attempt: Attempt | None
    ) -> AccountOut:
        """Open an account with zero balances on the shard its id hashes to; every attempt
        of one idempotent request opens the same account.

        Raises:
            LedgerError(shard_unavailable): the request's idempotency record could not be
                read, so a retry could not be promised the same account.
        """
        if attempt is None:
            account_id = new_account_id()
        elif attempt.first_seen_at is None:
            raise LedgerError(
                ErrorCode.SHARD_UNAVAILABLE,
                "the shard holding this Idempotency-Key is unavailable; retry",
                "Idempotency-Key",
            )
        else:
            account_id = account_id_for(attempt.operation_key, attempt.first_seen_at)
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            record = await account_rows.insert_account(
                conn,
                shard=shard.index,
                account_id=account_id,
                tenant_id=principal.tenant_id,
                currency=body.currency,
                normal_balance=body.normal_balance,
                allow_overdraft=body.allow_overdraft,
                metadata=body.metadata,
                limits=limits_of(body.limits),
            )
        return account_out(record)

    async def set_limits(
        self, *, principal: Principal, account_id: str, body: LimitsIn
    ) -> AccountOut:
        """Replace an account's limits (every field: an absent one removes that limit).

        Raises:
            LedgerError(account_not_found): unknown, or another tenant's.
        """
        if not is_account_id(account_id):
            raise _not_found(account_id)
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            record = await account_rows.set_limits(
                conn,
                shard=shard.index,
                tenant_id=principal.tenant_id,
                account_id=account_id,
                limits=limits_of(body),
            )
        return account_out(record)

    async def get(self, *, principal: Principal, account_id: str) -> AccountOut:
        """One of the tenant's accounts.

        Raises:
            LedgerError(account_not_found): unknown, or another tenant's.
        """
        if not is_account_id(account_id):
            raise _not_found(account_id)
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            record = await account_rows.fetch_account(
                conn, shard=shard.index, tenant_id=principal.tenant_id, account_id=account_id
            )
        return account_out(record)

    async def balance_at(
        self, *, principal: Principal, account_id: str, at: str | None
    ) -> BalanceAtOut:
        """The account's balance as it stood at `at` (RFC 3339 with an offset; now when
        None), read from its entries.

        Raises:
            LedgerError(account_not_found): unknown, or another tenant's.
            LedgerError(invalid_request): `at` is not an RFC 3339 instant, or in the future.
        """
        if not is_account_id(account_id):
            raise _not_found(account_id)
        instant = parse_instant(at, "at")
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            record = await account_rows.fetch_account(
                conn, shard=shard.index, tenant_id=principal.tenant_id, account_id=account_id
            )
            past = await account_rows.balance_at(conn, account=record, at=instant)
        return BalanceAtOut(
            account_id=record.id,
            currency=record.currency,
            at=instant,
            version=past.version,
            posted=past.balance.posted,
            pending=past.balance.pending,
            held=past.balance.held,
            available=past.balance.available,
        )

    async def availability(
        self, *, principal: Principal, account_id: str, limit: int
    ) -> list[AvailabilityOut]:
        """The credits still to become available to the account, soonest first.

        Raises:
            LedgerError(account_not_found): unknown, or another tenant's.
        """
        await self.get(principal=principal, account_id=account_id)

        async def on(shard: Shard) -> list[availability_rows.Awaiting]:
            async with shard.connection() as conn:
                return await availability_rows.awaiting_credits(
                    conn, tenant_id=principal.tenant_id, account_id=account_id, limit=limit
                )

        # A transfer lives on its debit account's shard: credits from accounts on other
        # shards wait there.
        found = await asyncio.gather(*(on(shard) for shard in self._cluster.shards))
        rows = sorted(
            (r for rows in found for r in rows), key=lambda r: (r.available_on, r.transfer_id)
        )[:limit]
        return [
            AvailabilityOut(transfer_id=r.transfer_id, amount=r.amount, available_on=r.available_on)
            for r in rows
        ]

    async def list_page(
        self,
        *,
        principal: Principal,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[list[AccountOut], bool]:
        """A page of the tenant's accounts across every shard, newest first."""
        cursor = Cursor(limit, starting_after, ending_before)

        async def page(conn: Connection, shard: int, c: Cursor) -> list[AccountRecord]:
            return await account_rows.list_accounts(
                conn,
                shard=shard,
                tenant_id=principal.tenant_id,
                after_id=c.starting_after,
                before_id=c.ending_before,
                limit=c.limit + 1,
            )

        rows, has_more = await merged_page(self._cluster, cursor, page)
        return [account_out(r) for r in rows], has_more

    async def set_status(
        self, *, principal: Principal, account_id: str, status: AccountStatus
    ) -> AccountOut:
        """Freeze, unfreeze or close an account.

        Raises:
            LedgerError(account_not_found, account_closed, account_not_empty).
        """
        if not is_account_id(account_id):
            raise _not_found(account_id)
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            record = await account_rows.set_account_status(
                conn,
                shard=shard.index,
                tenant_id=principal.tenant_id,
                account_id=account_id,
                status=status,
            )
        return account_out(record)

    async def entries(
        self,
        *,
        principal: Principal,
        account_id: str,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[list[EntryOut], bool]:
        """A page of an account's immutable entries, newest first.

        Raises:
            LedgerError(account_not_found): unknown, or another tenant's.
            LedgerError(invalid_request): a cursor that is not an entry of this account.
        """
        check_cursors(starting_after, ending_before)
        await self.get(principal=principal, account_id=account_id)
        after = _entry_version(account_id, starting_after, "starting_after")
        before = _entry_version(account_id, ending_before, "ending_before")
        shard = self._cluster.shard_of(account_id)
        async with shard.connection() as conn:
            rows = await transfer_rows.list_entries(
                conn,
                account_id=account_id,
                after_version=after,
                before_version=before,
                limit=limit + 1,
            )
        has_more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        return [entry_out(r) for r in rows], has_more


def _entry_version(account_id: str, cursor: str | None, param: str) -> int | None:
    if cursor is None:
        return None
    prefix = entry_id(account_id, 0)[:-1]
    version = cursor.removeprefix(prefix)
    if not cursor.startswith(prefix) or not version.isdigit():
        raise LedgerError(
            ErrorCode.INVALID_REQUEST, f"{cursor!r} is not an entry of {account_id}", param
        )
    return int(version)


def limits_of(body: LimitsIn | None) -> AccountLimits:
    """The domain's limits from a request's."""
    if body is None:
        return AccountLimits()
    return AccountLimits(
        min_available=body.min_available,
        max_balance=body.max_balance,
        daily_outgoing=body.daily_outgoing,
        review_above=body.review_above,
    )


def parse_instant(text: str | None, param: str) -> datetime:
    """An RFC 3339 instant from a query parameter, no later than now (now when None).

    A time without an offset is refused rather than guessed: a balance at the wrong hour
    is a wrong balance.

    Raises:
        LedgerError(invalid_request): not an instant with an offset, or in the future.
    """
    now = datetime.now(UTC)
    if text is None:
        return now
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"{text!r} is not an RFC 3339 date-time with an offset, e.g. 2026-01-31T23:59:59Z",
            param,
        )
    try:
        # An offset can take an instant at the calendar's edge out of its range in UTC.
        instant = instant.astimezone(UTC)
    except OverflowError:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST, f"{text!r} is outside the range of dates", param
        ) from None
    if instant > now:
        raise LedgerError(ErrorCode.INVALID_REQUEST, f"{text!r} is in the future", param)
    return instant
