"""The dataclasses that travel through Temporal: one input per workflow and per activity.

Payloads carry ids and amounts only, never documents, so a batch of `SAGA_BATCH_SIZE_MAX`
transfers stays far below Temporal's 256 KB payload warning. This module has no side
effects and imports nothing that does I/O, so the workflow sandbox can load it.
"""

import re
from dataclasses import dataclass, field

from ledger.limits import SAGA_BATCH_SIZE_MAX
from ledger.transfers import SagaStep

WORKFLOW_ID_PREFIX = "settle"
_RECLAIM_SUFFIX = re.compile(r"-r(\d+)$")


@dataclass(frozen=True, slots=True)
class SettlementTransfer:
    """One reserved transfer: what the saga needs to credit, post or release it."""

    id: str
    tenant_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    destination_shard: int


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


@dataclass(frozen=True, slots=True)
class SettledTransfer:
    """How the saga that settled one transfer ended it (not a workflow payload)."""

    workflow_id: str
    failure_code: str | None
    """None when the transfer was posted; else why its hold was released."""


@dataclass(frozen=True, slots=True)
class SweepInput:
    """Input of `SweepSagaOutbox`: how old an open outbox row must be to be swept."""

    stale_after_s: float
    rows_max: int
    batch_size_max: int


@dataclass(frozen=True, slots=True)
class SweeperInput:
    """Input of `SweepSagaOutboxForever`: what each sweep gets, and the pause between two."""

    sweep: SweepInput
    interval_s: float
    sweeps_per_run_max: int
    """Sweeps before the run continues as new, which keeps its history short."""


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """What one sweep did, per kind of row it found."""

    started: int = 0
    """Unclaimed rows (an API died before the hand-over) now claimed and started."""
    restarted: int = 0
    """Claimed rows whose workflow never started, started under their recorded id."""
    reclaimed: int = 0
    """Rows whose workflow closed while they stayed open, settled by a new workflow."""
    running: int = 0
    """Rows whose workflow is still running; left alone."""


def settlement_workflow_id_prefix(source: int) -> str:
    """What the workflow id of a batch out of `source` starts with.

    The id is this prefix and the batch's first claimed transfer id (`outbox.claim`). A
    transfer is claimed once, so no two batches share a first transfer: the id is unique,
    and anyone who knows the claim (the dispatcher, the sweeper) finds the same one.
    """
    return f"{WORKFLOW_ID_PREFIX}-{source}-"


def reclaimed_workflow_id(workflow_id: str) -> str:
    """The id under which rows are settled again after their workflow closed early.

    `settle-0-tr_X` becomes `settle-0-tr_X-r1`, then `-r2`: deterministic, so two
    sweepers agree, and the conditional re-claim lets only one of them win.
    """
    match = _RECLAIM_SUFFIX.search(workflow_id)
    if match is None:
        return f"{workflow_id}-r1"
    return f"{workflow_id[: match.start()]}-r{int(match.group(1)) + 1}"
