"""A fault drill: transfers under load while the worker, the API, shards and Temporal crash.

    python loadtests/chaos.py --data-dir /tmp/ledgerflow-chaos [--duration 60 --faults-every 5]

Starts the bench stack's pieces (4 durable shards, the Temporal dev server, one API and one
worker process), opens and funds accounts, then drives single- and cross-shard transfers
from `--concurrency` clients while, every `--faults-every` seconds, it crashes one piece in
turn and starts it again:
- the worker (SIGKILL), mid-saga;
- the API (SIGKILL), between reserves and hand-overs, with requests in flight;
- a shard (SIGKILL of the postmaster and its backends; WAL recovery on restart);
- the Temporal dev server (stopped and started on its SQLite file).

Each client retries a transfer with the same Idempotency-Key until it gets a final answer
(201, 202, 402), as a real client would. Afterwards it waits until no transfer is
processing, then checks, and exits 1 if anything is off:
1. every account's balance equals what the accepted transfers say (each exactly once);
2. `reconcile` (what `ledgerflow verify` runs) finds nothing wrong and nothing in flight.
"""

import argparse
import asyncio
import json
import multiprocessing
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path

import aiohttp
from ulid import ULID

from bench_stack import (
    HOST,
    Services,
    StackConfig,
    interrupt_once,
    new_api_key,
    run_child,
    wait_until_serving,
)
from ledgerflow.devstack import EmbeddedPostgres, TemporalDevServer, free_port
from ledgerflow.temporal import exit_without_finalizing
from shards.cluster import ShardCluster
from shards.reconcile import reconcile

ACCOUNTS_PER_SHARD = 4
OPENING_BALANCE = 1_000_000
FINAL = {201, 202, 402}
RETRY_PAUSE_S = 0.2


@dataclass
class Drill:
    """The running stack and what the load saw."""

    config: StackConfig
    shards: list[EmbeddedPostgres]
    temporal: TemporalDevServer
    children: dict[str, SpawnProcess] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)

    def spawn(self, role: str) -> None:
        child = multiprocessing.get_context("spawn").Process(
            target=run_child, args=(role, self.config)
        )
        child.start()
        self.children[role] = child

    def crash(self, role: str) -> None:
        child = self.children[role]
        assert child.pid is not None
        child.kill()
        child.join(timeout=30)
        self.spawn(role)


async def _post(client: aiohttp.ClientSession, drill: Drill, body: dict, deadline: float) -> int:
    """POST one transfer until it has a final answer, always with the same key."""
    headers = {"Idempotency-Key": f"chaos-{ULID()}"}
    while time.monotonic() < deadline:
        try:
            async with client.post("/v1/transfers", json=body, headers=headers) as response:
                await response.read()
                if response.status in FINAL:
                    return response.status
                drill.retries[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            drill.retries[type(error).__name__] += 1
        await asyncio.sleep(RETRY_PAUSE_S)
    raise SystemExit(f"no final answer for {body} before the deadline")


async def _accounts(client: aiohttp.ClientSession, drill: Drill) -> dict[str, int]:
    """Customer accounts on every shard, funded; returns account -> shard."""
    by_shard: dict[int, list[str]] = {}
    funding: dict[int, str] = {}
    while (
        len(by_shard) < len(drill.shards) or min(map(len, by_shard.values())) < ACCOUNTS_PER_SHARD
    ):
        async with client.post("/v1/accounts", json={"currency": "USD"}) as response:
            account = await response.json()
        by_shard.setdefault(account["shard"], []).append(account["id"])
    while len(funding) < len(drill.shards):
        body = {"currency": "USD", "allow_overdraft": True}
        async with client.post("/v1/accounts", json=body) as response:
            account = await response.json()
        funding.setdefault(account["shard"], account["id"])
    deadline = time.monotonic() + 120
    for shard, ids in by_shard.items():
        for account in ids[:ACCOUNTS_PER_SHARD]:
            body = _body(funding[shard], account, OPENING_BALANCE)
            assert await _post(client, drill, body, deadline) == 201
    return {a: s for s, ids in by_shard.items() for a in ids[:ACCOUNTS_PER_SHARD]}


def _body(debit: str, credit: str, amount: int) -> dict:
    return {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "USD",
    }


async def _faults(drill: Drill, stop: asyncio.Event, every_s: float) -> None:
    """Crash one piece after another until `stop`."""
    rng = random.Random(7)
    kinds = ["worker", "api", "shard", "temporal"]
    turn = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s)
            return
        except TimeoutError:
            pass
        kind = kinds[turn % len(kinds)]
        turn += 1
        if kind in ("worker", "api"):
            await asyncio.to_thread(drill.crash, kind)
            drill.faults.append(f"killed the {kind}")
        elif kind == "shard":
            shard = drill.shards[rng.randrange(len(drill.shards))]
            await asyncio.to_thread(shard.kill)
            await asyncio.to_thread(shard.start)
            drill.faults.append(f"crashed shard on port {shard.port}")
        else:
            await asyncio.to_thread(drill.temporal.stop)
            await asyncio.to_thread(drill.temporal.start)
            drill.faults.append("restarted Temporal")


async def _drive(args: argparse.Namespace, drill: Drill, key: str) -> int:
    """Run the load and the faults; check the books; returns the exit code."""
    url = f"http://{HOST}:{drill.config.api_port}"
    async with aiohttp.ClientSession(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as client:
        shard_of = await _accounts(client, drill)
        accounts = sorted(shard_of)
        model = dict.fromkeys(accounts, OPENING_BALANCE)
        stop = asyncio.Event()
        faults = asyncio.create_task(_faults(drill, stop, args.faults_every))
        load_until = time.monotonic() + args.duration
        answer_by = load_until + 180

        async def driver(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < load_until:
                debit, credit = rng.sample(accounts, 2)
                amount = rng.randint(1, 5_000)
                status = await _post(client, drill, _body(debit, credit, amount), answer_by)
                drill.statuses[status] += 1
                if status in (201, 202):
                    model[debit] -= amount
                    model[credit] += amount

        await asyncio.gather(*(driver(i) for i in range(args.concurrency)))
        stop.set()
        await faults
        settle_by = time.monotonic() + 180
        while time.monotonic() < settle_by:
            async with client.get("/v1/transfers", params={"limit": 100}) as response:
                page = (
                    (await response.json())["data"]
                    if response.status == 200
                    else [{"status": "processing"}]
                )
            if all(t["status"] != "processing" for t in page):
                break
            await asyncio.sleep(1)
        wrong = []
        for account in accounts:
            async with client.get(f"/v1/accounts/{account}") as response:
                balance = (await response.json())["balance"]
            if balance != {
                "posted": model[account],
                "pending": 0,
                "held": 0,
                "available": model[account],
            }:
                wrong.append(f"{account}: expected {model[account]}, got {balance}")
    cluster = await ShardCluster.connect(drill.config.shard_dsns, pool_size_max=2)
    try:
        deadline = time.monotonic() + 120
        report = await reconcile(cluster)
        while (report.problems or any(report.in_flight.values())) and time.monotonic() < deadline:
            await asyncio.sleep(2)
            report = await reconcile(cluster)
    finally:
        await cluster.close()
    print(f"faults: {len(drill.faults)} ({Counter(f.split(' on ')[0] for f in drill.faults)})")
    print(f"answers: {dict(sorted(drill.statuses.items()))}; retried: {dict(drill.retries)}")
    print(
        f"balances: {len(accounts) - len(wrong)} of {len(accounts)} exactly as the "
        "accepted transfers say"
    )
    for line in wrong:
        print(f"  {line}")
    print(
        f"reconcile: {report.accounts_checked} accounts, {report.entries_checked} entries, "
        f"problems {report.problems or 'none'}, in flight {report.in_flight or 'nothing'}"
    )
    return 1 if wrong or report.problems or any(report.in_flight.values()) else 0


def main() -> None:
    """Start the stack, run the drill, stop everything; exit 1 if the books are off."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--faults-every", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    services = Services.under(args.data_dir, shard_count=4)
    drill: Drill | None = None
    code = 1
    try:
        dsns = services.start()
        config = StackConfig(
            shard_dsns=dsns,
            temporal_address=services.temporal.address,
            api_port=free_port(),
            batch_window_ms=5,
            batch_size_max=60,
            in_flight_max=1,
            sync_wait_s=1.0,
            pool_size_max=16,
        )
        drill = Drill(config, services.shards, services.temporal)
        drill.spawn("worker")
        drill.spawn("api")
        key = asyncio.run(new_api_key(dsns, tenant_prefix="chaos"))
        wait_until_serving(f"http://{HOST}:{config.api_port}", list(drill.children.values()))
        code = asyncio.run(_drive(args, drill, key))
        print(json.dumps({"exit": code}))
    finally:
        for child in drill.children.values() if drill else []:
            child.terminate()
            child.join(timeout=15)
        services.stop()
    exit_without_finalizing(code)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt_once)
    main()
