"""The PNG of `ledgerflow bench --png-out`: throughput over time per scenario, the latency
distribution, and with several `--shards` counts, throughput against shards."""

import math
from pathlib import Path

import matplotlib as mpl

# Agg renders to files without a display; set before pyplot is imported.
mpl.use("Agg")
import matplotlib.pyplot as plt

from ledgerflow.bench.report import BenchReport

FIGURE_DPI = 110
PERCENTILE_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99)


def _label(scenario: str, shards: int | None, several_runs: bool) -> str:
    if not (several_runs and shards):
        return scenario
    return f"{scenario} ({shards} shard{'' if shards == 1 else 's'})"


def _nines(percentile: float) -> float:
    """Position on a log axis where 90, 99, 99.9 are equally spaced."""
    return math.log10(100 / max(100 - percentile, 1e-3))


def write_png(report: BenchReport, path: Path) -> None:
    """Draw the report and save it to `path`."""
    shard_counts = sorted({run.shards for run in report.runs if run.shards})
    several_runs = len(report.runs) > 1
    panels = 3 if len(shard_counts) > 1 else 2
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), dpi=FIGURE_DPI)
    over_time, latency = axes[0], axes[1]
    for run in report.runs:
        for result in run.scenarios:
            if result.unavailable is not None or not result.rates():
                continue
            label = _label(result.scenario, run.shards, several_runs)
            rates = result.rates()
            over_time.plot([i + 0.5 for i in range(len(rates))], rates, label=label)
            points = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99)
            latency.plot(
                [_nines(p) for p in points], [result.percentile_ms(p) for p in points], label=label
            )
    if report.pgbench is not None:
        over_time.axhline(report.pgbench.tps, color="grey", linestyle="--", label="pgbench TPC-B")
    over_time.set(title="Throughput over time", xlabel="s", ylabel="transfers/s")
    latency.set(title="Latency distribution", xlabel="percentile", ylabel="ms", yscale="log")
    latency.set_xticks([_nines(p) for p in PERCENTILE_TICKS], [f"{p:g}" for p in PERCENTILE_TICKS])
    for axis in (over_time, latency):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    if panels == 3:
        _shards_panel(report, axes[2], shard_counts)
    figure.suptitle(
        f"ledgerflow bench, {report.concurrency} clients, {report.duration_s:g} s per scenario, "
        f"{report.machine.get('cpus')} cores"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _shards_panel(report: BenchReport, axis: plt.Axes, shard_counts: list[int]) -> None:
    scenarios = sorted({r.scenario for run in report.runs for r in run.scenarios})
    for scenario in scenarios:
        points = [
            (run.shards, r.transfers_per_s)
            for run in report.runs
            for r in run.scenarios
            if r.scenario == scenario and r.unavailable is None and run.shards
        ]
        if points:
            axis.plot(*zip(*sorted(points), strict=True), marker="o", label=scenario)
    axis.set(title="Throughput against shards", xlabel="shards", ylabel="transfers/s")
    axis.set_xticks(shard_counts)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")
