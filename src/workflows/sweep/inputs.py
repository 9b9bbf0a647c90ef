"""What travels through Temporal for the outbox sweep: the sweep's and the sweeper's inputs,
and what a sweep did. No side effects, no I/O imports."""

from dataclasses import dataclass


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
