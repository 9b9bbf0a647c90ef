"""Stored records to API objects."""

from datetime import datetime

from api.models import AccountOut, BalanceOut, CaptureOut, EntryOut, LimitsOut, SagaOut, TransferOut
from ledger.ids import entry_id
from shards.accounts import AccountRecord
from shards.transfers import EntryRecord, TransferRecord


def account_out(record: AccountRecord) -> AccountOut:
    """An account as the API shows it."""
    balance = record.balance
    return AccountOut(
        id=record.id,
        currency=record.currency,
        normal_balance=record.normal_balance,
        allow_overdraft=record.allow_overdraft,
        status=record.status,
        shard=record.shard,
        balance=BalanceOut(
            posted=balance.posted,
            pending=balance.pending,
            held=balance.held,
            available=balance.available,
        ),
        version=record.version,
        metadata=record.metadata,
        created_at=record.created_at,
        limits=LimitsOut(
            min_available=record.limits.min_available,
            max_balance=record.limits.max_balance,
            daily_outgoing=record.limits.daily_outgoing,
            review_above=record.limits.review_above,
        ),
    )


def transfer_out(record: TransferRecord) -> TransferOut:
    """A transfer as the API shows it."""
    saga = None
    if record.cross_shard:
        saga = SagaOut(
            step=record.saga_step,
            workflow_id=record.workflow_id,
            source_shard=record.source_shard,
            destination_shard=record.destination_shard,
        )
    return TransferOut(
        id=record.id,
        status=record.status,
        amount=record.amount,
        currency=record.currency,
        debit_account_id=record.debit_account_id,
        credit_account_id=record.credit_account_id,
        cross_shard=record.cross_shard,
        failure_code=record.failure_code,
        saga=saga,
        metadata=record.metadata,
        created_at=record.created_at,
        expires_at=record.expires_at,
        captured_amount=None if record.expires_at is None else record.captured_amount,
        captures=None if record.expires_at is None else _captures(record),
        available_on=record.available_on,
        available_at=record.available_at,
    )


def _captures(record: TransferRecord) -> list[CaptureOut]:
    """A hold's captures, in order."""
    return [
        CaptureOut(
            amount=int(str(c["amount"])),
            final=bool(c["final"]),
            at=datetime.fromisoformat(str(c["at"])),
        )
        for c in record.captures
    ]


def entry_out(record: EntryRecord) -> EntryOut:
    """An entry as the API shows it."""
    return EntryOut(
        id=entry_id(record.account_id, record.version),
        account_id=record.account_id,
        transfer_id=record.transfer_id,
        currency=record.currency,
        layer=str(record.layer),
        side=str(record.side),
        amount=record.amount,
        posted_after=record.posted_after,
        available_after=record.available_after,
        version=record.version,
        created_at=record.created_at,
    )
