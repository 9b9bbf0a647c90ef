"""Changes of holds inside a posting batch: the transfer rows they lock, and the movements
each change makes.

A capture, a void, an increment or the expiry is a `HoldChangeRequest` of the group commit
(the expiry through the same posting batch in the funds timers), so it is
checked by the one rule set, under the one set of sorted locks, in the batch's
transaction, under its operation key (`shards.posting.apply_postings`):
1. the batch claims every operation key, then locks the transfer rows its changes name
   (`for update`, sorted by id), reading the shard's clock with them; then it locks every
   account, sorted. Concurrent changes of one hold, and its expiry, queue on the row;
2. each change is planned from the hold as the batch holds it in memory (`ledger.holds`),
   so two changes of one hold in one batch see each other;
3. its movements go through `ledger.posting` like any other, on one shard `CAPTURE`,
   `RELEASE`, `INCREASE_HOLD`, across shards their source forms (`CAPTURE_ACROSS`,
   `RELEASE_ACROSS`, `INCREASE_ACROSS`), and what the destination owes is written in the
   same statement (`POST_CREDIT`, `VOID_CREDIT`, `shards.followups`). An increment across
   shards owes nothing: its destination reserved the raise first (`shards.raises`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.errors import ErrorCode, LedgerError
from ledger.holds import (
    REVIEW_DECISIONS,
    HoldAction,
    HoldPlan,
    check_due,
    check_open,
    check_waiting,
    plan_change,
    plan_decision,
)
from ledger.ids import CLEARING_PREFIX
from ledger.posting import Movement
from ledger.transfers import SagaStep, TransferStatus
from shards.batch_writes import HoldAfter
from shards.db import Connection, Record
from shards.posting_types import HoldChangeRequest, PostingItem, PostingRequest

_HOLD_COLUMNS = (
    "id, tenant_id, status, amount, captured_amount, expires_at, debit_account_id,"
    " credit_account_id, currency, source_shard, destination_shard, cross_shard, saga_step"
)

# Keys, then transfer rows, then accounts, each sorted, in one round trip: the scalar
# subqueries make each step finish before the next one locks. The accounts are those the
# batch's movements name ($4) and those of the holds: across shards this shard's clearing
# account of the hold's currency, spelled from `ledger.ids.CLEARING_PREFIX` ($5, $6).
_CLAIM_AND_LOCK_HOLDS = f"""
with claimed as (
    insert into operations (key, transfer_id)
    select * from unnest($1::text[], $2::text[])
    on conflict do nothing
    returning key
), holds as materialized (
    select {_HOLD_COLUMNS} from transfers
    where id = any($3::text[]) and (select count(*) from claimed) >= 0
    order by id
    for update
), wanted as materialized (
    select array_agg(id) as ids from (
        select unnest($4::text[]) as id
        union all select debit_account_id from holds
        union all
        select case when cross_shard then $5 || $6::int || '_' || trim(currency)
                    else credit_account_id end
        from holds
    ) as named
), locked as materialized (
    -- The ids as one array, not a join: a row another transaction changed while this one
    -- waited for its lock is checked again against this condition alone (a semi-join's
    -- recheck could drop it).
    select {{accounts}} from accounts
    where id = any((select ids from wanted)::text[])
    order by id
    for update
)
select (select coalesce(array_agg(key), '{{{{}}}}') from claimed) as fresh_keys,
       clock_timestamp() as now,
       (select coalesce(jsonb_agg(to_jsonb(holds)), '[]') from holds) as holds,
       locked.*
from (values (1)) as one (n) left join locked on true
"""


@dataclass(slots=True)
class Hold:
    """A hold as the batch holds it: its row, changed in memory by each change applied."""

    id: str
    tenant_id: str
    status: TransferStatus
    amount: int
    captured: int
    expires_at: datetime | None
    debit_account_id: str
    credit_account_id: str
    currency: str
    source_shard: int
    destination_shard: int
    cross_shard: bool
    saga_step: SagaStep | None


def _hold(row: dict[str, Any]) -> Hold:
    expires_at = row["expires_at"]
    return Hold(
        id=row["id"],
        tenant_id=row["tenant_id"],
        status=TransferStatus(row["status"]),
        amount=row["amount"],
        captured=row["captured_amount"],
        expires_at=None if expires_at is None else datetime.fromisoformat(expires_at),
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        currency=row["currency"].strip(),
        source_shard=row["source_shard"],
        destination_shard=row["destination_shard"],
        cross_shard=row["cross_shard"],
        saga_step=None if row["saga_step"] is None else SagaStep(row["saga_step"]),
    )


def claim_and_lock_statement(account_columns: str) -> str:
    """The statement of `claim_and_lock_holds`, selecting `account_columns` of accounts."""
    return _CLAIM_AND_LOCK_HOLDS.format(accounts=account_columns)


async def claim_and_lock_holds(
    conn: Connection,
    statement: str,
    items: Sequence[PostingItem],
    *,
    shard: int,
    account_ids: Sequence[str],
) -> tuple[set[str], datetime, dict[str, Hold], list[Record]]:
    """Claim every item's operation key (sorted), then lock the transfer rows the changes
    among them name (sorted), then every account the batch touches (sorted), in one round
    trip (`statement`, from `claim_and_lock_statement`): (the keys claimed now, the shard's
    clock, the holds found, the account rows)."""
    claims = sorted({r.operation_key: r.transfer_id for r in reversed(items)}.items())
    transfer_ids = sorted({r.transfer_id for r in items if isinstance(r, HoldChangeRequest)})
    rows = await conn.fetch(
        statement,
        [key for key, _ in claims],
        [transfer_id for _, transfer_id in claims],
        transfer_ids,
        sorted(set(account_ids)),
        CLEARING_PREFIX,
        shard,
    )
    first = rows[0]
    holds = {h["id"]: _hold(h) for h in first["holds"]}
    accounts = [row for row in rows if row["id"] is not None]
    return set(first["fresh_keys"]), first["now"], holds, accounts


ACROSS: dict[Movement, tuple[Movement, Movement | None]] = {
    Movement.CAPTURE: (Movement.CAPTURE_ACROSS, Movement.POST_CREDIT),
    Movement.RELEASE: (Movement.RELEASE_ACROSS, Movement.VOID_CREDIT),
    Movement.INCREASE_HOLD: (Movement.INCREASE_ACROSS, None),
}
"""A hold's movement on one shard, and across shards: (on its source, what its destination
follows with). An increment follows nothing: its destination reserved the raise before
(`shards.raises`)."""


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A change of a hold, ready to apply: its movements here, what the destination will
    owe, and the row it leaves."""

    plan: HoldPlan
    steps: list[PostingRequest]
    followups: list[PostingRequest]
    after: HoldAfter


def plan(change: HoldChangeRequest, hold: Hold | None, *, now: datetime) -> PlannedChange:
    """Plan `change` of `hold` (None: no such transfer here) as the batch holds it now.

    Raises:
        LedgerError: transfer_not_found (unknown, or another tenant's), transfer_expired,
            transfer_not_pending, amount_exceeds_hold.
    """
    if hold is None or change.tenant_id not in (None, hold.tenant_id):
        raise LedgerError(
            ErrorCode.TRANSFER_NOT_FOUND, f"no such transfer: {change.transfer_id}", "id"
        )
    deciding = change.action in REVIEW_DECISIONS
    if deciding:
        check_waiting(hold.id, hold.status)
        planned = plan_decision(
            change.action is HoldAction.APPROVE,
            amount=hold.amount,
            cross_shard=hold.cross_shard,
            step=hold.saga_step,
        )
    else:
        expired = hold.expires_at is not None and hold.expires_at <= now
        if change.action is HoldAction.EXPIRE:
            check_due(hold.id, hold.status, due=expired)
        else:
            check_open(hold.id, hold.status, expired=expired)
        planned = plan_change(
            change.action,
            amount=change.amount,
            final=change.final,
            held_total=hold.amount,
            captured=hold.captured,
        )
    steps: list[PostingRequest] = []
    followups: list[PostingRequest] = []
    for movement, amount in planned.steps:
        # A decision's movements are in their source form already; a reserve held for
        # review credited no destination, so none follows.
        across = hold.cross_shard and not deciding
        here, there = ACROSS[movement] if across else (movement, None)
        steps.append(_movement(hold, here, f"{change.operation_key}:{here}", amount, change))
        if there is not None:
            followups.append(_movement(hold, there, f"{change.operation_key}:{there}", amount))
    captures: tuple[dict[str, object], ...] = ()
    if planned.capture is not None:
        captures = ({**planned.capture, "at": now.isoformat()},)
    after = HoldAfter(
        transfer_id=hold.id,
        status=planned.status,
        amount=planned.amount,
        captured=planned.captured,
        captures=captures,
        failure_code=None if planned.failure_code is None else str(planned.failure_code),
        step=None if planned.step is None else str(planned.step),
        to_saga=planned.to_saga,
    )
    return PlannedChange(planned, steps, followups, after)


def applied(hold: Hold, after: HoldAfter) -> None:
    """Keep in memory what a change applied left on the row, for the batch's next change of
    the same hold."""
    hold.status, hold.amount, hold.captured = after.status, after.amount, after.captured


def _movement(
    hold: Hold,
    movement: Movement,
    operation_key: str,
    amount: int,
    change: HoldChangeRequest | None = None,
) -> PostingRequest:
    return PostingRequest(
        operation_key=operation_key,
        transfer_id=hold.id,
        tenant_id=hold.tenant_id,
        movement=movement,
        debit_account_id=hold.debit_account_id,
        credit_account_id=hold.credit_account_id,
        amount=amount,
        currency=hold.currency,
        source_shard=hold.source_shard,
        destination_shard=hold.destination_shard,
        payee_refusal=None if change is None else change.payee_refusal,
    )
