"""Cross-shard transfers per second through the HTTP API, next to one workflow per transfer.

    python loadtests/bench_cross_shard.py --stack-file DIR/bench-stack.json
    python loadtests/bench_cross_shard.py --url http://127.0.0.1:PORT --api-key KEY \\
        --temporal-address 127.0.0.1:PORT [--transfers 30000 --concurrency 512 --duration 20]

1. Drives cross-shard transfers (every debit and credit account on different shards), one
   per request, from `--concurrency` clients, for at most `--transfers` or `--duration`
   seconds, with `ledgerflow.bench` (an aiohttp client; httpx's pool tops out near 150
   requests/s on one core and would measure itself). Prints transfers/s answered, the share
   posted within the request (201, the rest are 202 and still settling), p50/p99 latency,
   and transfers/s settled: all answered transfers over the load time plus the time the
   sagas took to catch up afterwards.
2. With `--temporal-address`, measures the design it replaces on the same Temporal server:
   one tiny workflow per transfer with three activities (reserve, credit, post) that do no
   I/O, so it shows Temporal's own per-workflow cost, an upper bound for that design.
   Prints its transfers/s and the ratio.
3. Prints where the CPU went during step 1, per process group, in % of one core: the API
   and the worker (told apart with `--stack-file`, which `loadtests/bench_stack.py`
   writes), PostgreSQL, Temporal, this load generator, and the rest of the machine, and
   the machine's CPU time per transfer answered (the accounts' set-up included).
   `--stack-file` also supplies the URL, API key and Temporal address.
4. With `--temporal-address`, prints how many saga workflows settled the load. With
   `--stack-file`, then reconciles every shard as `ledgerflow verify` does (each shard
   balanced, the clearing accounts matching the money in flight) and exits 1 if the books
   do not balance.

Targets loopback only: the URL and the Temporal address must be on 127.0.0.1.
"""

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import psutil
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from ulid import ULID

from ledgerflow.bench import BenchMode, BenchOptions, BenchResult, run_bench
from ledgerflow.temporal import exit_without_finalizing
from shards.cluster import ShardCluster
from shards.reconcile import reconcile

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class BaselineTransfer:
    """The one input of the baseline workflow and of each of its activities."""

    transfer_id: str
    amount: int


@activity.defn(name="baseline_reserve")
async def baseline_reserve(transfer: BaselineTransfer) -> None:
    """Stands for the reserve; does no I/O."""


@activity.defn(name="baseline_credit")
async def baseline_credit(transfer: BaselineTransfer) -> None:
    """Stands for the credit; does no I/O."""


@activity.defn(name="baseline_post")
async def baseline_post(transfer: BaselineTransfer) -> None:
    """Stands for the post; does no I/O."""


@workflow.defn
class BaselineTransferSaga:
    """One workflow per transfer, three activities: the shape batching replaces."""

    @workflow.run
    async def run(self, transfer: BaselineTransfer) -> None:
        """Reserve, credit, post, one after the other."""
        for step in (baseline_reserve, baseline_credit, baseline_post):
            await workflow.execute_activity(
                step, transfer, start_to_close_timeout=timedelta(seconds=30)
            )


async def run_baseline(address: str, *, transfers: int, concurrency: int) -> float:
    """Run `transfers` baseline workflows, `concurrency` at a time; returns workflows/s."""
    client = await Client.connect(address)
    queue = f"bench-baseline-{ULID()}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineTransferSaga],
        activities=[baseline_reserve, baseline_credit, baseline_post],
        # Unsandboxed is the fastest way to run a workflow: the baseline's best case.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    remaining = transfers
    async with worker:
        started = time.perf_counter()

        async def starter() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                transfer = BaselineTransfer(transfer_id=f"tr_{ULID()}", amount=1)
                await client.execute_workflow(
                    BaselineTransferSaga.run,
                    transfer,
                    id=f"baseline-{transfer.transfer_id}",
                    task_queue=queue,
                )

        await asyncio.gather(*(starter() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return transfers / elapsed


async def check_books(shard_dsns: list[str]) -> bool:
    """Reconcile every shard (what `ledgerflow verify` does); print and return the verdict."""
    cluster = await ShardCluster.connect(shard_dsns, pool_size_max=2)
    try:
        report = await reconcile(cluster)
    finally:
        await cluster.close()
    for problem in report.problems:
        print(f"books: {problem}")
    print(
        f"books: {'balanced' if report.ok else 'NOT BALANCED'}; {report.accounts_checked:,} "
        f"accounts and {report.entries_checked:,} entries on {len(shard_dsns)} shards; in "
        f"flight: {report.in_flight_summary()}"
    )
    return report.ok


async def count_sagas(address: str, *, since: datetime) -> int:
    """Settlement workflows started since `since` (funding the accounts starts none)."""
    client = await Client.connect(address)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    counted = await client.count_workflows(
        f"WorkflowType = 'SettleCrossShardBatch' AND StartTime >= '{stamp}'"
    )
    return counted.count


def _check_loopback(url_or_address: str) -> None:
    host = urlparse(url_or_address if "//" in url_or_address else f"//{url_or_address}").hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load {url_or_address}: loopback only")


async def drain_s(url: str, api_key: str, *, timeout_s: float = 120) -> float:
    """Seconds until the newest transfers (the last to be handed over) are all settled.

    Batches of one source settle in order, so once the newest page has no transfer still
    `processing`, the sagas have caught up with the load.
    """
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        base_url=url, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        while time.perf_counter() - started < timeout_s:
            async with client.get("/v1/transfers", params={"limit": 100}) as response:
                page = await response.json()
            if all(t["status"] != "processing" for t in page["data"]):
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    raise SystemExit(f"sagas did not catch up within {timeout_s} s")


def _report(result: BenchResult, drained_s: float) -> float:
    rate = result.ok / result.elapsed_s
    settled = result.ok / (result.elapsed_s + drained_s)
    posted = result.statuses[201] / result.ok if result.ok else 0.0
    print(f"cross-shard: {result.summary()}")
    print(
        f"cross-shard: {rate:,.0f} transfers/s answered, {posted:.1%} posted within the "
        f"request; all settled {drained_s:.2f} s after the load: {settled:,.0f} settled/s; "
        f"p50 {result.percentile_ms(0.5):.1f} ms, p99 {result.percentile_ms(0.99):.1f} ms"
    )
    return settled


class CpuSplit:
    """CPU seconds per process group between `start()` and `report()`, from /proc."""

    def __init__(self, roles: dict[int, str]) -> None:
        self._roles = {os.getpid(): "load generator", **roles}
        self._before: dict[int, tuple[str, float]] = {}
        self._started = 0.0

    def _group(self, process: psutil.Process) -> str:
        if process.pid in self._roles:
            return self._roles[process.pid]
        name = process.name()
        return name if name in {"postgres", "temporal"} else "other"

    def _sample(self) -> dict[int, tuple[str, float]]:
        sample = {}
        for process in psutil.process_iter():
            try:
                times = process.cpu_times()
                sample[process.pid] = (self._group(process), times.user + times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return sample

    def start(self) -> None:
        """Take the first sample."""
        self._before = self._sample()
        self._started = time.perf_counter()

    def report(self, transfers: int) -> str:
        """`group N%` for every group, busiest first, the machine's total, and the CPU time
        the machine spent per transfer of the `transfers` answered meanwhile."""
        elapsed = time.perf_counter() - self._started
        used: dict[str, float] = {}
        for pid, (group, seconds) in self._sample().items():
            spent = seconds - self._before.get(pid, (group, 0.0))[1]
            used[group] = used.get(group, 0.0) + max(spent, 0.0)
        parts = [f"{g} {v / elapsed:.0%}" for g, v in sorted(used.items(), key=lambda i: -i[1])]
        spent = sum(used.values())
        total = spent / elapsed
        per_transfer = (
            f", {spent / transfers * 1000:.2f} ms of CPU per transfer (set-up included)"
            if transfers
            else ""
        )
        return (
            f"{', '.join(parts)}; machine {total:.0%} of {psutil.cpu_count() * 100}%" + per_transfer
        )


async def main() -> None:
    """Parse the arguments, run both measurements, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack-file", type=Path, help="bench-stack.json of bench_stack.py")
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("--transfers", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--accounts-per-shard", type=int, default=16)
    parser.add_argument("--temporal-address")
    parser.add_argument("--baseline-transfers", type=int, default=600)
    parser.add_argument("--baseline-concurrency", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true", help="skip step 2")
    args = parser.parse_args()
    roles: dict[int, str] = {}
    if args.stack_file:
        stack = json.loads(args.stack_file.read_text())
        args.url = args.url or stack["url"]
        args.api_key = args.api_key or stack["api_key"]
        args.temporal_address = args.temporal_address or stack["temporal_address"]
        roles = {pid: role for role, pid in stack["pids"].items()}
        config = stack["config"]
        print(
            f"stack: {len(config['shard_dsns'])} shards, sagas of at most "
            f"{config['batch_size_max']} transfers, {config['in_flight_max']} in flight per "
            f"source shard, {config['sync_wait_s']} s wait in the request"
        )
    if not args.url or not args.api_key:
        parser.error("give --stack-file, or --url and --api-key")
    _check_loopback(args.url)
    options = BenchOptions(
        url=args.url,
        api_key=args.api_key,
        mode=BenchMode.CROSS,
        transfers=args.transfers,
        concurrency=args.concurrency,
        duration_s_max=args.duration,
        accounts_per_shard=args.accounts_per_shard,
    )
    cpu = CpuSplit({pid: f"{role} process" for pid, role in roles.items()})
    load_started = datetime.now(UTC)
    cpu.start()
    result = await run_bench(options)
    cpu_used = cpu.report(result.ok)
    rate = _report(result, await drain_s(args.url, args.api_key))
    print(f"CPU during the load (% of one core): {cpu_used}")
    if args.temporal_address:
        _check_loopback(args.temporal_address)
        sagas = await count_sagas(args.temporal_address, since=load_started)
        if sagas:
            print(
                f"sagas: {sagas:,} workflows settled them, {result.ok / sagas:.1f} transfers "
                "per workflow on average"
            )
    balanced = await check_books(config["shard_dsns"]) if args.stack_file else True
    if args.temporal_address and not args.no_baseline:
        baseline = await run_baseline(
            args.temporal_address,
            transfers=args.baseline_transfers,
            concurrency=args.baseline_concurrency,
        )
        print(f"one workflow per transfer: {baseline:,.1f} transfers/s")
        print(f"batched sagas (settled) / one workflow per transfer: {rate / baseline:,.1f}x")
    if not balanced:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
    exit_without_finalizing(0)
