"""What travels through Temporal for the settlement: one input per workflow and per activity,
and their results.

Payloads carry ids and amounts only, never documents, so a batch of `SAGA_BATCH_SIZE_MAX`
transfers stays far below Temporal's 256 KB payload warning. This module has no side
effects and imports nothing that does I/O.
"""

from dataclasses import dataclass, field

from ledger.limits import SAGA_BATCH_SIZE_MAX
from ledger.transfers import SagaStep, SettlementKind


@dataclass(frozen=True, slots=True)
class SettlementTransfer:
    """One reserved transfer: what the saga needs to credit, post or release it."""

    id: str
    tenant_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    destination_shard: int
    kind: SettlementKind = SettlementKind.TRANSFER
    """A transfer is credited and posted; a hold credited pending and opened; a delayed
    credit credited pending and posted."""


@dataclass(frozen=True, slots=True)
class SettlementBatch:
    """Input of `SettleCrossShardBatch`: transfers out of one source shard, in one currency,
    to any other shards.

    `batch_id` is the workflow id; it derives from what the batch settles. Batching by source
    rather than by pair of shards keeps batches large as shards are added (with S shards
    there are S sources but S * (S - 1) pairs), while the claim of a batch stays one
    transaction on one shard, where its outbox rows live.
    """

    batch_id: str
    source_shard: int
    currency: str
    transfers: list[SettlementTransfer]

    def __post_init__(self) -> None:
        assert 0 < len(self.transfers) <= SAGA_BATCH_SIZE_MAX
        assert all(t.destination_shard != self.source_shard for t in self.transfers)
        assert len({t.id for t in self.transfers}) == len(self.transfers), "duplicate transfer"

    @property
    def amount(self) -> int:
        """The batch's total, in minor units."""
        return sum(t.amount for t in self.transfers)

    @property
    def destination_shards(self) -> list[int]:
        """The shards the batch credits, in order."""
        return sorted({t.destination_shard for t in self.transfers})


@dataclass(frozen=True, slots=True)
class CreditFundsInput:
    """Input of `credit_funds`: the transfers of one batch bound for one destination shard."""

    batch_id: str
    source_shard: int
    destination_shard: int
    currency: str
    transfers: list[SettlementTransfer]

    def __post_init__(self) -> None:
        assert all(t.destination_shard == self.destination_shard for t in self.transfers)


@dataclass(frozen=True, slots=True)
class CreditOutcome:
    """Result of `credit_funds`: the refused transfers and why (an `ErrorCode` value)."""

    refusals: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FinishHoldsInput:
    """Input of `post_holds` and `release_holds`: the holds of one batch on its source shard.

    `failure_codes` says, for a release, why each transfer failed.
    """

    batch_id: str
    source_shard: int
    currency: str
    transfers: list[SettlementTransfer]
    failure_codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransferState:
    """One transfer as the saga sees it (the query handler's answer)."""

    transfer_id: str
    step: SagaStep
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class SettlementOutcome:
    """Result of `SettleCrossShardBatch`."""

    posted: int
    released: int
    failure_codes: dict[str, str]
