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

Each client retries a request with the same Idempotency-Key until it gets a final answer
(201, 202, 402 for a transfer; 200 or a refusal for a change), as a real client would.
With `--stack-kills N` it also kills the whole stack at once N times, at even offsets of the
load: the API, the worker, every shard and Temporal, all with SIGKILL, then starts them
all again.

With `--funds` every other request of a client is a funds flow instead of a plain
transfer, on one shard or across two: a hold captured in part, raised and captured finally;
a hold raised and voided; a hold left to expire; a delayed credit that falls due seconds
later; a transfer above its account's `review_above`, approved or rejected; a batch of
three transfers, atomic or not (an atomic one must move all or nothing). Afterwards it
waits until no transfer is processing and every hold and delayed credit has ended, then
checks, and exits 1 if anything is off:
1. every account's balance equals what the accepted transfers and changes say (each exactly
   once), with nothing held or pending;
2. every hold is final, and each change is in the event feed once (`--funds`);
3. `reconcile` (what `ledgerflow verify` runs) finds nothing wrong and nothing in flight.
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
from shards.reconcile import Report, reconcile

ACCOUNTS_PER_SHARD = 4
OPENING_BALANCE = 1_000_000
FINAL = {201, 202, 402}
RETRY_PAUSE_S = 0.2
REVIEW_ABOVE = 10_000
"""Every customer account's `review_above`: the drill's review flow sends more."""
HOLD_FINAL = {"posted", "voided", "expired", "failed"}


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

    def kill_everything(self) -> None:
        """SIGKILL every piece at once, then start them all again."""
        for child in self.children.values():
            child.kill()
        for child in self.children.values():
            child.join(timeout=30)
        for shard in self.shards:
            shard.kill()
        self.temporal.kill()
        for shard in self.shards:
            shard.start()
        self.temporal.start()
        for role in list(self.children):
            self.spawn(role)


async def _post(client: aiohttp.ClientSession, drill: Drill, body: dict, deadline: float) -> int:
    """POST one transfer until it has a final answer, always with the same key."""
    status, _ = await _send(client, drill, "/v1/transfers", body, deadline, FINAL)
    return status


async def _send(
    client: aiohttp.ClientSession,
    drill: Drill,
    path: str,
    body: dict | None,
    deadline: float,
    final: set[int],
) -> tuple[int, dict]:
    """POST `body` to `path` until the answer's status is in `final`, always with the same
    key; returns (status, body)."""
    headers = {"Idempotency-Key": f"chaos-{ULID()}"}
    while time.monotonic() < deadline:
        try:
            async with client.post(path, json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                in_flight = (answer.get("error") or {}).get("code") == "idempotency_key_in_flight"
                if response.status in final and not in_flight:
                    return response.status, answer
                drill.retries[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            drill.retries[type(error).__name__] += 1
        await asyncio.sleep(RETRY_PAUSE_S)
    raise SystemExit(f"no final answer for {path} {body} before the deadline")


async def _get(client: aiohttp.ClientSession, path: str, params: dict | None = None) -> dict:
    """GET until it answers 200 (a piece may be down for a while)."""
    while True:
        try:
            async with client.get(path, params=params) as response:
                if response.status == 200:
                    return await response.json()
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(RETRY_PAUSE_S)


async def _settled(client: aiohttp.ClientSession, transfer_id: str, deadline: float) -> dict:
    """The transfer once its saga finished (no longer `processing`)."""
    while time.monotonic() < deadline:
        transfer = await _get(client, f"/v1/transfers/{transfer_id}")
        if transfer["status"] != "processing":
            return transfer
        await asyncio.sleep(RETRY_PAUSE_S)
    raise SystemExit(f"{transfer_id} still processing at the deadline")


@dataclass
class Funds:
    """What the funds flows did: money moved per account, and the changes each transfer
    was answered for, to find in the event feed."""

    moved: Counter[str] = field(default_factory=Counter)
    holds: list[str] = field(default_factory=list)
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(transfer id, event type) -> how many answered changes should have written it."""
    broken: list[str] = field(default_factory=list)
    """Atomic batches that moved some of their items and not the others."""

    def move(self, debit: str, credit: str, amount: int) -> None:
        """Record money that moved from `debit` to `credit`."""
        self.moved[debit] -= amount
        self.moved[credit] += amount


_CHANGE_FINAL = {200, 400, 402, 409}


async def _funds_flow(
    client: aiohttp.ClientSession,
    drill: Drill,
    funds: Funds,
    rng: random.Random,
    debit: str,
    credit: str,
    deadline: float,
) -> None:
    """One funds flow between `debit` and `credit`, each request retried under its key until
    it is final; what moved goes into `funds`."""
    kind = rng.choice(["capture", "void", "expire", "delayed", "review", "batch"])
    amount = rng.randint(1, 5_000)
    if kind == "batch":
        await _batch(client, drill, funds, rng, debit, credit, deadline)
        return
    body = _body(debit, credit, amount)
    if kind == "delayed":
        body["available_on"] = _rfc3339(time.time() + rng.uniform(1, 4))
    elif kind == "review":
        body["amount"] = amount = REVIEW_ABOVE + amount
    else:
        body["pending"] = True
        body["expires_in"] = rng.randint(1, 3) if kind == "expire" else 3_600
    status, answer = await _send(client, drill, "/v1/transfers", body, deadline, FINAL | {409})
    drill.statuses[status] += 1
    if status not in (201, 202):
        return
    transfer = await _settled(client, answer["id"], deadline)
    if kind == "delayed":
        if transfer["status"] == "posted":
            funds.move(debit, credit, amount)
    elif kind == "review":
        if transfer["status"] == "requires_review":
            await _decide(client, drill, funds, rng, transfer, deadline)
    elif transfer["status"] == "pending":
        funds.holds.append(transfer["id"])
        if kind != "expire":
            await _change_hold(client, drill, funds, rng, transfer, deadline, void=kind == "void")


async def _batch(
    client: aiohttp.ClientSession,
    drill: Drill,
    funds: Funds,
    rng: random.Random,
    debit: str,
    credit: str,
    deadline: float,
) -> None:
    """A batch of three transfers between `debit` and `credit` (both ways), atomic or not,
    retried under its key until every item is final; an atomic one moves all or nothing."""
    atomic = rng.random() < 0.5
    items = [
        _body(debit, credit, rng.randint(1, 5_000)),
        _body(debit, credit, rng.randint(1, 5_000)),
        _body(credit, debit, rng.randint(1, 5_000)),
    ]
    body = {"transfers": items, "atomic": atomic}
    status, answer = await _send(client, drill, "/v1/transfers/batch", body, deadline, {200})
    drill.statuses[status] += 1
    posted = []
    for item, outcome in zip(items, answer["data"], strict=True):
        if outcome["status"] not in (201, 202):
            continue
        transfer = await _settled(client, outcome["transfer"]["id"], deadline)
        if transfer["status"] == "posted":
            funds.move(item["debit_account_id"], item["credit_account_id"], item["amount"])
            posted.append(transfer["id"])
    if atomic and posted and len(posted) != len(items):
        funds.broken.append(f"atomic batch posted {len(posted)} of {len(items)}: {posted}")


async def _decide(
    client: aiohttp.ClientSession,
    drill: Drill,
    funds: Funds,
    rng: random.Random,
    transfer: dict,
    deadline: float,
) -> None:
    """Approve or reject a transfer waiting for review."""
    approve = rng.random() < 0.5
    path = f"/v1/transfers/{transfer['id']}/{'approve' if approve else 'reject'}"
    decided, _ = await _send(client, drill, path, None, deadline, _CHANGE_FINAL)
    final = await _settled(client, transfer["id"], deadline)
    if final["status"] == "posted":
        funds.move(transfer["debit_account_id"], transfer["credit_account_id"], final["amount"])
    kind = "approved" if approve else "rejected"
    funds.changes[(transfer["id"], kind)] += int(decided == 200)


async def _change_hold(
    client: aiohttp.ClientSession,
    drill: Drill,
    funds: Funds,
    rng: random.Random,
    hold: dict,
    deadline: float,
    *,
    void: bool,
) -> None:
    """Capture part of a hold (unless it is to be voided), raise it, then void it or capture
    some of what is left finally."""
    path = f"/v1/transfers/{hold['id']}"
    held, captured = hold["amount"], 0

    async def change(action: str, body: dict | None, event: str) -> bool:
        got, _ = await _send(client, drill, f"{path}/{action}", body, deadline, _CHANGE_FINAL)
        funds.changes[(hold["id"], event)] += int(got == 200)
        return got == 200

    if not void:
        part = rng.randint(0, held)
        if await change("capture", {"amount": part, "final": False}, "captured"):
            captured += part
    raise_by = rng.randint(1, 2_000)
    if await change("increment", {"amount": raise_by}, "incremented"):
        held += raise_by
    if void:
        await change("void", None, "voided")
    else:
        rest = rng.randint(0, held - captured)
        if await change("capture", {"amount": rest}, "captured"):
            captured += rest
    funds.move(hold["debit_account_id"], hold["credit_account_id"], captured)


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + (
        f".{int(epoch_s % 1 * 1_000_000):06d}Z"
    )


async def _check_funds(client: aiohttp.ClientSession, funds: Funds, deadline: float) -> list[str]:
    """Every hold final, each answered change in the event feed exactly once, and every
    atomic batch all or nothing."""
    wrong: list[str] = list(funds.broken)
    for hold in funds.holds:
        while time.monotonic() < deadline:
            status = (await _get(client, f"/v1/transfers/{hold}"))["status"]
            if status in HOLD_FINAL:
                break
            await asyncio.sleep(1)
        else:
            wrong.append(f"{hold}: not final at the deadline ({status})")
    seen: Counter[tuple[str, str]] = Counter()
    params: dict[str, object] = {"limit": 100}
    while True:
        page = await _get(client, "/v1/events", params)
        for event in page["data"]:
            seen[(event["data"]["object"]["id"], event["type"].removeprefix("transfer."))] += 1
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    for (transfer_id, kind), count in funds.changes.items():
        if seen[(transfer_id, kind)] != count:
            wrong.append(f"{transfer_id}: {seen[(transfer_id, kind)]} {kind} events, not {count}")
    for (transfer_id, kind), count in seen.items():
        if count > 1 and kind not in ("captured", "incremented"):
            wrong.append(f"{transfer_id}: {count} {kind} events")
    return wrong


async def _accounts(client: aiohttp.ClientSession, drill: Drill, *, review: bool) -> dict[str, int]:
    """Customer accounts on every shard, funded (with `review`, each with `review_above`);
    returns account -> shard."""
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
            if review:
                limits = {"review_above": REVIEW_ABOVE}
                got, _ = await _send(
                    client, drill, f"/v1/accounts/{account}/limits", limits, deadline, {200}
                )
                assert got == 200
    return {a: s for s, ids in by_shard.items() for a in ids[:ACCOUNTS_PER_SHARD]}


def _body(debit: str, credit: str, amount: int) -> dict:
    return {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "USD",
    }


async def _stack_kills(drill: Drill, count: int, duration_s: float, guard: asyncio.Lock) -> None:
    """Kill the whole stack `count` times, at even offsets of the load's `duration_s`."""
    started = time.monotonic()
    for n in range(1, count + 1):
        await asyncio.sleep(max(0.0, started + duration_s * n / (count + 1) - time.monotonic()))
        async with guard:
            await asyncio.to_thread(drill.kill_everything)
        drill.faults.append("killed the whole stack")


async def _faults(
    drill: Drill, stop: asyncio.Event, every_s: float, guard: asyncio.Lock | None = None
) -> None:
    """Crash one piece after another until `stop` (never while `guard` is held), the n-th
    at n × `every_s` after the start, however long the earlier ones took: each kind fires
    by a known offset, not by chance."""
    guard = guard or asyncio.Lock()
    rng = random.Random(7)
    kinds = ["worker", "api", "shard", "temporal"]
    turn = 0
    started = time.monotonic()
    while not stop.is_set():
        at = started + (turn + 1) * every_s
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, at - time.monotonic()))
            return
        except TimeoutError:
            pass
        kind = kinds[turn % len(kinds)]
        turn += 1
        async with guard:
            await _fault(drill, kind, rng)


async def _fault(drill: Drill, kind: str, rng: random.Random) -> None:
    """Crash one piece (`worker`, `api`, `shard`, `temporal`) and start it again."""
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
        shard_of = await _accounts(client, drill, review=args.funds)
        accounts = sorted(shard_of)
        model = dict.fromkeys(accounts, OPENING_BALANCE)
        funds = Funds()
        stop = asyncio.Event()
        guard = asyncio.Lock()
        faults = asyncio.create_task(_faults(drill, stop, args.faults_every, guard))
        kills = asyncio.create_task(_stack_kills(drill, args.stack_kills, args.duration, guard))
        load_until = time.monotonic() + args.duration
        answer_by = load_until + 180

        async def driver(seed: int) -> None:
            rng = random.Random(seed)
            turn = 0
            while time.monotonic() < load_until:
                debit, credit = rng.sample(accounts, 2)
                turn += 1
                if args.funds and turn % 2 == 0:
                    await _funds_flow(client, drill, funds, rng, debit, credit, answer_by)
                    continue
                amount = rng.randint(1, 5_000)
                status = await _post(client, drill, _body(debit, credit, amount), answer_by)
                drill.statuses[status] += 1
                if status in (201, 202):
                    model[debit] -= amount
                    model[credit] += amount

        await asyncio.gather(*(driver(i) for i in range(args.concurrency)))
        stop.set()
        await faults
        await kills
        for account, delta in funds.moved.items():
            model[account] += delta
        await _wait_settled(client)
        funds_wrong = (
            await _check_funds(client, funds, time.monotonic() + 120) if args.funds else []
        )
        wrong = await _balances_wrong(client, model)
    report = await _reconciled(drill.config.shard_dsns)
    print(f"faults: {len(drill.faults)} ({Counter(f.split(' on ')[0] for f in drill.faults)})")
    print(f"answers: {dict(sorted(drill.statuses.items()))}; retried: {dict(drill.retries)}")
    print(
        f"balances: {len(accounts) - len(wrong)} of {len(accounts)} exactly as the "
        "accepted transfers say"
    )
    for line in wrong:
        print(f"  {line}")
    if args.funds:
        print(f"funds: {len(funds.holds)} holds, problems {funds_wrong or 'none'}")
    print(
        f"reconcile: {report.accounts_checked} accounts, {report.entries_checked} entries, "
        f"problems {report.problems or 'none'}, in flight"
        f" {report.in_flight_summary() if report.settling else 'nothing'}"
    )
    off = wrong or funds_wrong or report.problems or report.settling
    return 1 if off else 0


async def _reconciled(shard_dsns: list[str]) -> Report:
    """`reconcile`, again until it finds nothing wrong and nothing in flight (or 120 s)."""
    cluster = await ShardCluster.connect(shard_dsns, pool_size_max=2)
    try:
        # Wait only while money settles: the first report with a problem is the answer,
        # even if the problem would be gone later.
        deadline = time.monotonic() + 120
        report = await reconcile(cluster)
        while not report.problems and report.settling and time.monotonic() < deadline:
            await asyncio.sleep(2)
            report = await reconcile(cluster)
    finally:
        await cluster.close()
    return report


async def _wait_settled(client: aiohttp.ClientSession) -> None:
    """Wait (up to 180 s) until no transfer of the tenant is processing, reading every page
    of its transfers."""
    settle_by = time.monotonic() + 180
    while time.monotonic() < settle_by:
        params: dict[str, object] = {"limit": 100}
        processing = False
        while not processing:
            page = await _get(client, "/v1/transfers", params)
            processing = any(t["status"] == "processing" for t in page["data"])
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
        if not processing:
            return
        await asyncio.sleep(1)


async def _balances_wrong(client: aiohttp.ClientSession, model: dict[str, int]) -> list[str]:
    """The accounts whose balance is not what the model says, nothing held or pending (a
    delayed credit falls due on the funds timers' next pass, so each gets a minute)."""
    wrong = []
    for account, posted in model.items():
        for _ in range(60):
            balance = (await _get(client, f"/v1/accounts/{account}"))["balance"]
            if balance["pending"] == balance["held"] == 0:
                break
            await asyncio.sleep(1)
        expected = {"posted": posted, "pending": 0, "held": 0, "available": posted}
        if balance != expected:
            wrong.append(f"{account}: expected {posted}, got {balance}")
    return wrong


def main() -> None:
    """Start the stack, run the drill, stop everything; exit 1 if the books are off."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--faults-every", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--funds",
        action="store_true",
        help="Every other request a hold, review, delayed credit or batch.",
    )
    parser.add_argument(
        "--stack-kills", type=int, default=0, help="Times to SIGKILL the whole stack at once."
    )
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
        # Not a fixed sleep: on a busy machine the API process takes several seconds to start.
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
