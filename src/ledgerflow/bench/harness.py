"""`ledgerflow bench` from start to end: pgbench on a scratch server, then per stack (the
one given, or one freshly started per `--shards` count) every scenario, the one-workflow-
per-transfer baseline on its Temporal server, and the reconciliation of its shards."""

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ledgerflow.bench.accounts import open_accounts
from ledgerflow.bench.baseline import BASELINE, run_baseline
from ledgerflow.bench.load import HOT_SPREAD, LoadShape, ScenarioRequests, drive
from ledgerflow.bench.load import Progress as ProgressCallback
from ledgerflow.bench.measure import ScenarioResult
from ledgerflow.bench.pgbench import PgbenchError, measure_pgbench
from ledgerflow.bench.report import BenchReport, Books, RunReport
from ledgerflow.bench.scenarios import CROSS_SHARD_SCENARIOS, Scenario
from ledgerflow.bench.stack import Target, started_stack
from ledgerflow.devstack import DevStackError
from ledgerflow.runtime import run_loop
from shards.cluster import ShardCluster
from shards.reconcile import reconcile

CLIENT_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 120.0
SETTLE_POLL_S = 0.05
BOOKS_POOL_SIZE = 2


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What to run, the same for every stack."""

    scenarios: tuple[Scenario, ...]
    shape: LoadShape
    accounts_per_shard: int = 16
    baseline: bool = True
    pgbench: bool = True


ProgressFor = Callable[[str], ProgressCallback | None]
"""Given a row's name, the callback that shows its progress (or None: nothing shown)."""


def _no_progress(_name: str) -> None:
    return None


async def settle_s(client: aiohttp.ClientSession, *, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
    """Seconds until the newest transfers are all settled: batches of one source settle in
    order, so once the newest page has no transfer still `processing`, the sagas caught up.

    Raises:
        TimeoutError: the sagas did not catch up in `timeout_s`.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        async with client.get("/v1/transfers", params={"limit": 100}) as response:
            page = await response.json()
        if all(t["status"] != "processing" for t in page["data"]):
            return time.perf_counter() - started
        await asyncio.sleep(SETTLE_POLL_S)
    raise TimeoutError(f"the sagas did not catch up within {timeout_s:.0f} s")


async def check_books(shard_dsns: list[str]) -> Books:
    """Reconcile every shard as `ledgerflow verify` does."""
    if not shard_dsns:
        return Books(checked=False)
    cluster = await ShardCluster.connect(shard_dsns, pool_size_max=BOOKS_POOL_SIZE)
    try:
        found = await reconcile(cluster)
    finally:
        await cluster.close()
    return Books(
        checked=True,
        ok=found.ok,
        accounts_checked=found.accounts_checked,
        entries_checked=found.entries_checked,
        in_flight=found.in_flight_summary(),
        problems=list(found.problems),
    )


async def run_scenarios(
    target: Target,
    plan: BenchPlan,
    *,
    shards: int | None,
    baseline: bool,
    progress_for: ProgressFor = _no_progress,
) -> RunReport:
    """Every scenario of `plan` against `target`, then the baseline (when asked and the
    Temporal address is known), then the books."""
    run = RunReport(shards=shards, url=target.url)
    async with aiohttp.ClientSession(
        base_url=target.url,
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S),
        connector=aiohttp.TCPConnector(limit=plan.shape.concurrency),
    ) as client:
        accounts = await open_accounts(client, per_shard=plan.accounts_per_shard)
        requests = ScenarioRequests(client, accounts, plan.shape)
        for scenario in plan.scenarios:
            names = [scenario, HOT_SPREAD] if scenario is Scenario.HOT else [scenario]
            for name in names:
                result = ScenarioResult(scenario=name, shards=shards)
                run.scenarios.append(result)
                if scenario in CROSS_SHARD_SCENARIOS and len(accounts.shards) < 2:
                    result.unavailable = "needs at least 2 shards"
                    continue
                operation = requests.operation(name)
                await drive(result, operation, plan.shape, progress=progress_for(name))
                try:
                    result.settle_s = await settle_s(client)
                except TimeoutError as error:
                    result.note = str(error)
    if baseline and target.temporal_address:
        run.scenarios.append(
            await run_baseline(
                target.temporal_address,
                plan.shape,
                shards=shards,
                progress=progress_for(BASELINE),
            )
        )
    run.books = await check_books(target.shard_dsns)
    return run


def machine() -> dict[str, object]:
    """Cores and memory, as the report states them ("2 cores, 24 GiB")."""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


@contextmanager
def live_progress(duration_s: float, *, enabled: bool, console: Console) -> Iterator[ProgressFor]:
    """A rich progress bar per row with its current rate, or nothing when not `enabled`."""
    if not enabled:
        yield _no_progress
        return
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]:>10} transfers/s"),
    )
    with Progress(*columns, console=console, transient=False) as progress:

        def progress_for(name: str) -> ProgressCallback:
            task = progress.add_task(name, total=duration_s, rate="-")
            last = [0.0, 0]

            def update(elapsed_s: float, transfers: int) -> None:
                span = elapsed_s - last[0]
                rate = (transfers - last[1]) / span if span > 0 else 0.0
                if elapsed_s >= duration_s:
                    # Done: the row's average, not the last sliver's burst of answers.
                    rate = transfers / elapsed_s
                if span >= 1.0 or elapsed_s >= duration_s:
                    last[0], last[1] = elapsed_s, transfers
                progress.update(task, completed=min(elapsed_s, duration_s), rate=f"{rate:,.0f}")

            return update

        yield progress_for


def run_bench(
    plan: BenchPlan,
    *,
    target: Target | None,
    shard_counts: list[int],
    work_dir: Path,
    progress_for: ProgressFor = _no_progress,
) -> BenchReport:
    """pgbench, then each stack's scenarios, into one report.

    With `target`, drives that stack; otherwise starts a fresh stack under `work_dir` for
    each of `shard_counts`, one after the other (the baseline runs on the first).

    Raises:
        RuntimeError: a stack's API or worker did not start.
        DevStackError: a stack's server did not start.
        BenchSetupError: the API refused the bench's accounts.
    """
    report = BenchReport(
        started_at=datetime.now(UTC),
        duration_s=plan.shape.duration_s,
        concurrency=plan.shape.concurrency,
        batch_size=plan.shape.batch_size,
        machine=machine(),
    )
    if plan.pgbench:
        try:
            report.pgbench = measure_pgbench(
                work_dir / "pgbench",
                clients=plan.shape.concurrency,
                duration_s=plan.shape.duration_s,
            )
        except (PgbenchError, DevStackError) as error:
            report.pgbench_error = f"pgbench failed: {error}"
    if target is not None:
        run = run_scenarios(
            target, plan, shards=None, baseline=plan.baseline, progress_for=progress_for
        )
        report.runs.append(run_loop(run))
        return report
    for position, count in enumerate(shard_counts):
        with started_stack(work_dir / f"shards-{count}", shard_count=count) as (stack, _):
            run = run_scenarios(
                stack,
                plan,
                shards=count,
                baseline=plan.baseline and position == 0,
                progress_for=progress_for,
            )
            report.runs.append(run_loop(run))
    return report
