"""`ledgerflow bench`: transfers per second through the HTTP API, with latency percentiles.

It opens its own accounts (funded from an overdraft account on each shard), drives one
transfer per request from `concurrency` clients for a bounded count and time, and prints
throughput, p50/p95/p99 and the status mix. Only loopback or the given URL is targeted.

The client is aiohttp: httpx's connection pool spends most of its CPU scanning connections
at 64+ concurrent requests and measured itself (about 150 requests/s), not the server.
"""

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from ulid import ULID

from ledgerflow.bench_mode import BenchMode

FUNDING_AMOUNT = 10**12


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to drive."""

    url: str
    api_key: str
    mode: BenchMode
    transfers: int
    concurrency: int
    duration_s_max: float
    accounts_per_shard: int = 8


SECONDS_PER_DAY = 86_400
"""A billion transfers a day is 11,574 a second on average."""


@dataclass(slots=True)
class BenchResult:
    """What was measured."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        """Transfers answered 201 or 202."""
        return self.statuses[201] + self.statuses[202]

    def percentile_ms(self, q: float) -> float:
        """A latency percentile in milliseconds."""
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def summary(self) -> str:
        """One paragraph for the terminal."""
        rate = self.ok / self.elapsed_s if self.elapsed_s else 0.0
        mean = statistics.fmean(self.latencies_s) * 1000 if self.latencies_s else 0.0
        return (
            f"{self.ok} transfers in {self.elapsed_s:.2f}s = {rate:,.0f} transfers/s "
            f"({rate * SECONDS_PER_DAY / 1e6:,.1f} million a day); "
            f"latency p50 {self.percentile_ms(0.5):.1f} ms, p95 {self.percentile_ms(0.95):.1f} ms, "
            f"p99 {self.percentile_ms(0.99):.1f} ms, mean {mean:.1f} ms; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


async def _create_account(client: aiohttp.ClientSession, *, overdraft: bool) -> dict:
    body = {"currency": "USD", "allow_overdraft": overdraft}
    async with client.post("/v1/accounts", json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def _open_accounts(
    client: aiohttp.ClientSession, per_shard: int
) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Customer accounts per shard, each funded from its shard's overdraft account."""
    customers: dict[int, list[str]] = {}
    funding: dict[int, str] = {}
    for _ in range(2000):
        account = await _create_account(client, overdraft=False)
        customers.setdefault(account["shard"], []).append(account["id"])
        shards = set(customers)
        if len(shards) >= 2 and all(len(v) >= per_shard for v in customers.values()):
            break
    for _ in range(2000):
        if set(funding) >= set(customers):
            break
        account = await _create_account(client, overdraft=True)
        funding.setdefault(account["shard"], account["id"])
    for shard, ids in customers.items():
        for account_id in ids:
            status = await _post_transfer(client, funding[shard], account_id, FUNDING_AMOUNT)
            assert status in (201, 202), status
    return customers, funding


async def _post_transfer(
    client: aiohttp.ClientSession, debit: str, credit: str, amount: int
) -> int:
    """POST one transfer; returns the HTTP status."""
    body = {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "USD",
    }
    headers = {"Idempotency-Key": f"bench-{ULID()}"}
    async with client.post("/v1/transfers", json=body, headers=headers) as response:
        await response.read()
        return response.status


def _pick_pair(
    customers: dict[int, list[str]], mode: BenchMode, rng: random.Random
) -> tuple[str, str]:
    shards = sorted(customers)
    source = rng.choice(shards)
    cross = mode is BenchMode.CROSS or (mode is BenchMode.MIXED and rng.random() < 0.5)
    destination = rng.choice([s for s in shards if s != source]) if cross else source
    debit = rng.choice(customers[source])
    credit = rng.choice([a for a in customers[destination] if a != debit])
    return debit, credit


async def run_bench(options: BenchOptions) -> BenchResult:
    """Drive the transfers and measure them."""
    assert isinstance(options.mode, BenchMode), options.mode
    assert 0 < options.concurrency <= 1000
    async with aiohttp.ClientSession(
        base_url=options.url,
        headers={"Authorization": f"Bearer {options.api_key}"},
        timeout=aiohttp.ClientTimeout(total=60.0),
        connector=aiohttp.TCPConnector(limit=options.concurrency),
    ) as client:
        customers, _ = await _open_accounts(client, options.accounts_per_shard)
        result = BenchResult()
        remaining = options.transfers
        started = time.perf_counter()
        deadline = started + options.duration_s_max

        async def driver(seed: int) -> None:
            nonlocal remaining
            rng = random.Random(seed)
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                debit, credit = _pick_pair(customers, options.mode, rng)
                sent = time.perf_counter()
                status = await _post_transfer(client, debit, credit, rng.randint(1, 100))
                result.latencies_s.append(time.perf_counter() - sent)
                result.statuses[status] += 1

        await asyncio.gather(*(driver(i) for i in range(options.concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result
