"""Holds on one shard: capture (in part, several times, or finally), void, increment and
expiry of a `pending` transfer.

Each change runs in one transaction on the transfer's shard:
1. claim the change's operation key; a key seen before returns its first result;
2. lock the transfer row (`for update`): concurrent captures, voids and the expiry of one
   hold queue here, and each sees what the one before it left;
3. check the hold is still open: `pending`, and `expires_at` still ahead of the database's
   clock, read under the lock, so a hold is refused from its expiry instant whatever the
   expiry workflow is doing;
4. move the money through the posting path (`apply_postings`: `CAPTURE`, `RELEASE`,
   `INCREASE_HOLD`), in the same transaction;
5. update the transfer row and write its event.

A hold across shards is held on its source shard (against the clearing account) and pending
on its destination: there the same change moves the source side (`CAPTURE_ACROSS`,
`RELEASE_ACROSS`, `INCREASE_ACROSS`) and records what the destination owes in the same
transaction (`shards.followups`: `POST_CREDIT`, `VOID_CREDIT`, `RAISE_CREDIT`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledger.errors import ErrorCode, LedgerError
from ledger.posting import Movement
from ledger.transfers import EventType, TransferStatus, check_transition
from shards.cluster import Shard
from shards.db import Connection, Record
from shards.events import reported
from shards.followups import followup, record_followups
from shards.posting import apply_postings
from shards.posting_types import PostingRequest, movement_of, result_json
from shards.transfers import TransferRecord, fetch_transfer


class HoldAction(StrEnum):
    """What a caller does to a hold."""

    CAPTURE = "capture"
    VOID = "void"
    INCREMENT = "increment"


@dataclass(frozen=True, slots=True)
class HoldChange:
    """One change of a hold, keyed for exactly-once application."""

    operation_key: str
    tenant_id: str
    transfer_id: str
    action: HoldAction
    amount: int | None = None
    """Capture: what to post (all that is held when None). Increment: by how much."""
    final: bool = True
    """Capture: release what is left (True), or keep it held for later captures."""


_CLAIM = """
insert into operations (key, transfer_id) values ($1, $2) on conflict do nothing returning key
"""

_LOCK_HOLD = """
select id, tenant_id, status, amount, captured_amount, expires_at, debit_account_id,
       credit_account_id, currency, source_shard, destination_shard, cross_shard,
       clock_timestamp() as now
from transfers where id = $1 and tenant_id = $2
for update
"""

_FINISH = reported(
    """update transfers set status = $2, amount = $3, captured_amount = $4,
                          captures = captures || $5::jsonb, updated_at = clock_timestamp()
    where id = $1
    returning *""",
    event_type="$6",
    shard="$7",
)


def _refusal(code: ErrorCode, message: str, param: str | None = None) -> LedgerError:
    return LedgerError(code, message, param)


def _check_open(row: Record) -> None:
    """Refuse a change of a hold that is no longer open.

    Raises:
        LedgerError(transfer_not_pending, transfer_expired).
    """
    status = TransferStatus(row["status"])
    if status is TransferStatus.EXPIRED or (
        status is TransferStatus.PENDING and row["expires_at"] <= row["now"]
    ):
        raise _refusal(
            ErrorCode.TRANSFER_EXPIRED, f"the hold {row['id']} expired at {row['expires_at']}"
        )
    if status is not TransferStatus.PENDING:
        raise _refusal(
            ErrorCode.TRANSFER_NOT_PENDING, f"transfer {row['id']} is {status}, not pending"
        )


_ACROSS = {
    Movement.CAPTURE: (Movement.CAPTURE_ACROSS, Movement.POST_CREDIT),
    Movement.RELEASE: (Movement.RELEASE_ACROSS, Movement.VOID_CREDIT),
    Movement.INCREASE_HOLD: (Movement.INCREASE_ACROSS, Movement.RAISE_CREDIT),
}
"""A hold's movement on one shard, and across shards: (on its source, what its destination
follows with)."""


def hold_moves(
    row: Record, movement: Movement, *, operation_key: str, amount: int
) -> tuple[PostingRequest, PostingRequest | None]:
    """A change `movement` (`CAPTURE`, `RELEASE`, `INCREASE_HOLD`) of the hold in `row`: the
    movement on its shard, and for a hold across shards the destination's follow-up."""
    if not row["cross_shard"]:
        return movement_of(
            row, movement, operation_key=f"{operation_key}:{movement}", amount=amount
        ), None
    here, there = _ACROSS[movement]
    return (
        movement_of(row, here, operation_key=f"{operation_key}:{here}", amount=amount),
        followup(row, there, operation_key=operation_key, amount=amount),
    )


def _movement(
    row: Record, change: HoldChange, movement: Movement, amount: int
) -> tuple[PostingRequest, PostingRequest | None]:
    return hold_moves(row, movement, operation_key=change.operation_key, amount=amount)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The movements a change makes and what it leaves on the transfer row."""

    moves: list[tuple[PostingRequest, PostingRequest | None]]
    """Each movement on this shard, with its follow-up on the destination (across shards)."""
    status: TransferStatus
    amount: int
    """Held so far, increments included."""
    captured: int
    captures: list[dict[str, object]]
    """Captures to append to the row's list."""
    event: EventType | None


def _plan(row: Record, change: HoldChange) -> _Plan:
    """What a change does to the hold in `row`.

    Raises:
        LedgerError(amount_exceeds_hold).
    """
    amount, captured = row["amount"], row["captured_amount"]
    held = amount - captured
    status = TransferStatus.PENDING
    match change.action:
        case HoldAction.INCREMENT:
            assert change.amount is not None
            return _Plan(
                [_movement(row, change, Movement.INCREASE_HOLD, change.amount)],
                status,
                amount + change.amount,
                captured,
                [],
                None,
            )
        case HoldAction.VOID:
            moves = [_movement(row, change, Movement.RELEASE, held)] if held else []
            status = check_transition(status, TransferStatus.VOIDED)
            return _Plan(moves, status, amount, captured, [], EventType.TRANSFER_VOIDED)
        case HoldAction.CAPTURE:
            take = held if change.amount is None else change.amount
            if take > held:
                raise _refusal(
                    ErrorCode.AMOUNT_EXCEEDS_HOLD,
                    f"{take} is more than the {held} still held",
                    "amount",
                )
            moves = [_movement(row, change, Movement.CAPTURE, take)] if take else []
            if change.final:
                status = check_transition(status, TransferStatus.POSTED)
                if held > take:
                    moves.append(_movement(row, change, Movement.RELEASE, held - take))
            capture = {"amount": take, "final": change.final}
            return _Plan(
                moves, status, amount, captured + take, [capture], EventType.TRANSFER_CAPTURED
            )


async def change_hold(
    conn: Connection, *, shard: int, change: HoldChange
) -> tuple[LedgerError | None, bool]:
    """Apply one change to a hold on `shard`, exactly once: (its refusal or None, whether it
    was a replay of the key's first result).

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with conn.transaction(isolation="read_committed"):
        fresh = await conn.fetchval(_CLAIM, change.operation_key, change.transfer_id)
        if fresh is None:
            stored = await conn.fetchval(
                "select result from operations where key = $1", change.operation_key
            )
            error = stored.get("error") if isinstance(stored, dict) else None
            if isinstance(error, dict):
                return LedgerError(ErrorCode(error["code"]), error["message"], error["param"]), True
            return None, True
        try:
            row = await conn.fetchrow(_LOCK_HOLD, change.transfer_id, change.tenant_id)
            if row is None:
                raise _refusal(
                    ErrorCode.TRANSFER_NOT_FOUND, f"no such transfer: {change.transfer_id}", "id"
                )
            _check_open(row)
            plan = _plan(row, change)
            if plan.moves:
                results = await apply_postings(
                    conn, shard=shard, requests=[here for here, _ in plan.moves]
                )
                refused = next((r.error for r in results if r.error is not None), None)
                if refused is not None:
                    # Only an increment can be refused (funds, a frozen account); capture and
                    # release always apply. The refusal is stored under the change's key.
                    raise refused
                await record_followups(conn, [there for _, there in plan.moves if there])
        except LedgerError as error:
            await _store(conn, change.operation_key, error)
            return error, False
        await conn.execute(
            _FINISH,
            change.transfer_id,
            str(plan.status),
            plan.amount,
            plan.captured,
            # The connection's jsonb codec encodes it (`shards.cluster`).
            [{**c, "at": row["now"].isoformat()} for c in plan.captures],
            None if plan.event is None else str(plan.event),
            shard,
        )
        await _store(conn, change.operation_key, None)
        return None, False


async def _store(conn: Connection, key: str, error: LedgerError | None) -> None:
    await conn.execute(
        "update operations set result = $2::jsonb where key = $1", key, result_json(error)
    )


async def read_hold(conn: Connection, *, tenant_id: str, transfer_id: str) -> TransferRecord | None:
    """The transfer after a change (None when the tenant has no such transfer here)."""
    return await fetch_transfer(conn, tenant_id=tenant_id, transfer_id=transfer_id)


@dataclass(frozen=True, slots=True)
class ExpiryPass:
    """What one pass of the expiry found: how many holds it expired, whether more are due
    now, and when the next open hold expires (None when there is none)."""

    expired: int
    more_due: bool
    next_deadline: datetime | None


_DUE = """
select id, tenant_id, status, amount, captured_amount, expires_at, debit_account_id,
       credit_account_id, currency, source_shard, destination_shard, cross_shard,
       clock_timestamp() as now
from transfers
where status = 'pending' and expires_at <= clock_timestamp()
order by expires_at
limit $1
for update skip locked
"""

_EXPIRE = reported(
    """update transfers t set status = $2, updated_at = clock_timestamp()
    from unnest($1::text[]) as u(id)
    where t.id = u.id
    returning t.*""",
    event_type="$3",
    shard="$4",
)


async def expire_due_holds(shard: Shard, *, limit: int) -> ExpiryPass:
    """Release up to `limit` holds on `shard` whose `expires_at` has passed, in one
    transaction, and mark them `expired`. Holds another transaction is changing are
    skipped (that change sees the expiry itself and is refused); the next pass takes them.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with shard.connection() as conn, conn.transaction(isolation="read_committed"):
        rows: Sequence[Record] = await conn.fetch(_DUE, limit)
        if rows:
            moves = [
                hold_moves(
                    row,
                    Movement.RELEASE,
                    operation_key=f"expire:{row['id']}",
                    amount=row["amount"] - row["captured_amount"],
                )
                for row in rows
                if row["amount"] > row["captured_amount"]
            ]
            if moves:
                results = await apply_postings(
                    conn, shard=shard.index, requests=[here for here, _ in moves]
                )
                assert all(r.error is None for r in results), "a release is never refused"
                await record_followups(conn, [there for _, there in moves if there])
            await conn.execute(
                _EXPIRE,
                [row["id"] for row in rows],
                str(check_transition(TransferStatus.PENDING, TransferStatus.EXPIRED)),
                str(EventType.TRANSFER_EXPIRED),
                shard.index,
            )
        next_deadline = await conn.fetchval(
            "select min(expires_at) from transfers where status = 'pending'"
        )
    return ExpiryPass(expired=len(rows), more_due=len(rows) == limit, next_deadline=next_deadline)
