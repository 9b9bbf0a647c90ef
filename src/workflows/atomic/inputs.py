"""The dataclasses of atomic batches that travel through Temporal.

An atomic batch is a set of transfers (legs) that are all posted or none is: each leg's
debit account may live on any shard, and so may its credit account. This module has no
side effects and imports nothing that does I/O, so workflow code may use it.
"""

import hashlib
from dataclasses import dataclass, field

from ledger.limits import ATOMIC_BATCH_LEGS_MAX

ATOMIC_WORKFLOW_ID_PREFIX = "atomic-"


@dataclass(frozen=True, slots=True)
class LegRefusal:
    """Why one leg was refused: the error a single transfer would have got."""

    code: str
    message: str
    param: str | None


@dataclass(frozen=True, slots=True)
class AtomicLeg:
    """One transfer of an atomic batch, as its steps need it."""

    id: str
    tenant_id: str
    operation_key: str
    """The reserve's operation key: the item's idempotency key, or one derived from the
    request's, so every attempt of the request reserves at most once."""
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    source_shard: int
    destination_shard: int
    metadata: dict[str, str] = field(default_factory=dict)
    payee_refusal: LegRefusal | None = None
    """What the payee's shard would refuse this leg's credit for when the batch came: the
    reserve answers it in `ledger.posting.REFUSAL_ORDER` with the payer's own refusals."""


@dataclass(frozen=True, slots=True)
class AtomicBatch:
    """Input of `SettleAtomicBatch`: the legs, in the request's order."""

    batch_id: str
    """The workflow id; it derives from the request (`atomic_workflow_id`)."""
    legs: list[AtomicLeg]

    def __post_init__(self) -> None:
        assert 0 < len(self.legs) <= ATOMIC_BATCH_LEGS_MAX
        assert len({leg.id for leg in self.legs}) == len(self.legs), "duplicate leg"
        assert len({leg.operation_key for leg in self.legs}) == len(self.legs)

    @property
    def source_shards(self) -> list[int]:
        """The shards that hold the legs' debit accounts, in order."""
        return sorted({leg.source_shard for leg in self.legs})

    @property
    def destination_shards(self) -> list[int]:
        """The shards that hold the legs' credit accounts, in order."""
        return sorted({leg.destination_shard for leg in self.legs})


@dataclass(frozen=True, slots=True)
class AtomicStepInput:
    """Input of one step on one shard: `movement` (a `ledger.posting.Movement` value) for
    each of `legs`. `failure_codes` says, for a release, why each transfer failed."""

    batch_id: str
    shard: int
    movement: str
    legs: list[AtomicLeg]
    failure_codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AtomicStepOutcome:
    """Result of a step that may refuse (reserve, prepare): the refused legs by id."""

    refusals: dict[str, LegRefusal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AtomicOutcome:
    """Result of `SettleAtomicBatch`: every leg posted (`refusals` empty), or none.

    `refusals` holds the legs that were refused themselves; every other leg then failed
    with `batch_leg_refused`. `reserved` lists the legs whose reserve went through (their
    transfers exist, posted or failed); a leg refused at its reserve has no transfer.
    """

    batch_id: str
    leg_ids: list[str]
    reserved: list[str]
    refusals: dict[str, LegRefusal]

    @property
    def posted(self) -> bool:
        """Whether the batch went through."""
        return not self.refusals


def atomic_workflow_id(operation_keys: list[str]) -> str:
    """The workflow id of an atomic batch whose legs reserve under `operation_keys`.

    It derives from the keys, so every attempt of one idempotent request finds the same
    workflow, and a transfer's outbox row names it from the reserve on.
    """
    digest = hashlib.sha256("\n".join(operation_keys).encode()).hexdigest()
    return f"{ATOMIC_WORKFLOW_ID_PREFIX}{digest[:40]}"


def is_atomic_workflow_id(workflow_id: str) -> bool:
    """Whether a workflow id (an outbox row's) names an atomic batch's saga."""
    return workflow_id.startswith(ATOMIC_WORKFLOW_ID_PREFIX)
