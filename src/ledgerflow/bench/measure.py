"""What one scenario measured: transfers, latencies in an HDR histogram, errors by code, and
transfers completed per second of the run."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LATENCY_US_MIN = 1
LATENCY_US_MAX = 120_000_000
"""Two minutes: longer than any client timeout, so every answered request fits."""
LATENCY_SIGNIFICANT_DIGITS = 3
TIMELINE_BUCKET_S = 1.0
DISTRIBUTION_PERCENTILES = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)
"""The points of the latency distribution kept in the JSON and drawn in the PNG."""

CONNECTION_ERROR = "connection_error"
ENDPOINT_UNAVAILABLE = "endpoint_unavailable"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request did: transfers it completed (201/202 items), the status of every
    item, and the error code of every refused one."""

    transfers: int
    statuses: Counter[int]
    errors: Counter[str]


@dataclass(slots=True)
class ScenarioResult:
    """One row of the table."""

    scenario: str
    shards: int | None
    histogram: HdrHistogram = field(
        default_factory=lambda: HdrHistogram(
            LATENCY_US_MIN, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS
        )
    )
    transfers: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    timeline: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    settle_s: float | None = None
    unavailable: str | None = None
    """Why the scenario could not run (the endpoint answered 404, too few shards)."""
    note: str = ""

    def record(self, *, at_s: float, latency_s: float, outcome: Outcome) -> None:
        """Add one answered request `at_s` seconds into the run."""
        assert at_s >= 0, at_s
        assert latency_s >= 0, latency_s
        self.requests += 1
        self.transfers += outcome.transfers
        self.statuses.update(outcome.statuses)
        self.errors.update(outcome.errors)
        self.histogram.record_value(
            min(max(round(latency_s * 1e6), LATENCY_US_MIN), LATENCY_US_MAX)
        )
        bucket = int(at_s / TIMELINE_BUCKET_S)
        if bucket >= len(self.timeline):
            self.timeline.extend([0] * (bucket + 1 - len(self.timeline)))
        self.timeline[bucket] += outcome.transfers

    def record_error(self, code: str) -> None:
        """Count a request that got no answer (a connection error, a timeout)."""
        self.errors[code] += 1

    @property
    def transfers_per_s(self) -> float:
        """Completed transfers (items, for batches) per second of load."""
        return self.transfers / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def rates(self) -> list[float]:
        """Transfers per second in each whole TIMELINE_BUCKET_S of the run. The answers of a
        last, partial bucket (requests sent before the end, answered after it) count in
        `transfers` but draw no point: over a sliver of a second they would show a spike."""
        whole = int(self.elapsed_s / TIMELINE_BUCKET_S)
        return [round(n / TIMELINE_BUCKET_S, 1) for n in self.timeline[:whole]]

    def percentile_ms(self, percentile: float) -> float:
        """A latency percentile (0-100) in milliseconds; 0 without answers."""
        if self.histogram.get_total_count() == 0:
            return 0.0
        return self.histogram.get_value_at_percentile(percentile) / 1000

    def to_json(self, *, pgbench_tps: float | None) -> dict[str, Any]:
        """This row in the documented JSON shape (docs/performance.md)."""
        count = self.histogram.get_total_count()
        rate = self.transfers_per_s
        return {
            "scenario": self.scenario,
            "shards": self.shards,
            "available": self.unavailable is None,
            "unavailable_reason": self.unavailable,
            "transfers": self.transfers,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "transfers_per_s": round(rate, 1),
            "ratio_to_pgbench": round(rate / pgbench_tps, 3) if pgbench_tps else None,
            "latency_ms": {
                "p50": self.percentile_ms(50),
                "p95": self.percentile_ms(95),
                "p99": self.percentile_ms(99),
                "max": self.histogram.get_max_value() / 1000 if count else 0.0,
                "mean": self.histogram.get_mean_value() / 1000 if count else 0.0,
                "count": count,
                "distribution": [[p, self.percentile_ms(p)] for p in DISTRIBUTION_PERCENTILES],
            },
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "errors": dict(sorted(self.errors.items())),
            "timeline": {"bucket_s": TIMELINE_BUCKET_S, "transfers_per_s": self.rates()},
            "settle_s": None if self.settle_s is None else round(self.settle_s, 3),
            "note": self.note,
        }


def error_summary(errors: Counter[str]) -> str:
    """`code ×N, ...`, most frequent first, for the table."""
    return ", ".join(f"{code} ×{n}" for code, n in errors.most_common()) or "-"
