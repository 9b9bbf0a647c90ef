"""The scenarios' requests and the driver that sends them from `concurrency` clients for a
fixed duration, recording every answer in a `ScenarioResult`."""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from ulid import ULID

from ledgerflow.bench.accounts import CURRENCY, BenchAccounts, post_transfer
from ledgerflow.bench.measure import (
    CONNECTION_ERROR,
    ENDPOINT_UNAVAILABLE,
    Outcome,
    ScenarioResult,
)
from ledgerflow.bench.scenarios import Scenario

ACCEPTED = frozenset({201, 202})
ENDPOINT_MISSING = frozenset({404, 405})
"""An API without the batch route answers 404, or 405 where `POST /v1/transfers/{id}`
matches the path and allows no POST."""
TICK_S = 0.25
ATOMIC_LEGS = 3
"""A payment, its fee and a tax leg."""
HOT_SPREAD = "hot-spread"
"""The row beside `hot`: the same load, its credits spread over many accounts."""

Operation = Callable[[random.Random], Awaitable[Outcome]]
Progress = Callable[[float, int], None]
"""Called every TICK_S with the seconds elapsed and the transfers completed so far."""


class EndpointUnavailableError(Exception):
    """The API answered 404 or 405 for the scenario's endpoint: it does not have it yet."""


@dataclass(frozen=True, slots=True)
class LoadShape:
    """How hard and how long to push."""

    duration_s: float
    concurrency: int
    batch_size: int = 100


def _error_code(status: int, body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code") or f"http_{status}")
    return f"http_{status}"


def _single_outcome(status: int, body: object) -> Outcome:
    if status in ACCEPTED:
        return Outcome(transfers=1, statuses=Counter({status: 1}), errors=Counter())
    return Outcome(
        transfers=0, statuses=Counter({status: 1}), errors=Counter({_error_code(status, body): 1})
    )


def _batch_outcome(status: int, body: object) -> Outcome:
    """Items answered 201/202 count as transfers; refused items count by their code."""
    if status in ENDPOINT_MISSING:
        raise EndpointUnavailableError(status)
    if status != 200 or not isinstance(body, dict):
        return Outcome(0, Counter({status: 1}), Counter({_error_code(status, body): 1}))
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for item in body.get("data", []):
        statuses[item["status"]] += 1
        if item["status"] not in ACCEPTED:
            errors[_error_code(item["status"], item)] += 1
    return Outcome(sum(statuses[s] for s in ACCEPTED), statuses, errors)


def _transfer_item(debit: str, credit: str, amount: int) -> dict:
    return {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": CURRENCY,
    }


HOLD_OPEN_POLL_S = 0.05
"""How often a hold across shards is read while its saga opens it."""


class ScenarioRequests:
    """One request of each scenario, between the bench's accounts."""

    def __init__(
        self, client: aiohttp.ClientSession, accounts: BenchAccounts, shape: LoadShape
    ) -> None:
        """Requests through `client` between `accounts`."""
        self._client = client
        self._accounts = accounts
        self._shape = shape

    def operation(self, scenario: str) -> Operation:
        """The request of `scenario` (a `Scenario` value or `hot-spread`)."""
        return {
            Scenario.SINGLE: self._single,
            Scenario.CROSS: self._cross,
            Scenario.MIXED: self._mixed,
            Scenario.HOT: self._hot,
            HOT_SPREAD: self._hot_spread,
            Scenario.BATCH: self._batch,
            Scenario.ATOMIC: self._atomic,
            Scenario.HOLD: self._hold,
            Scenario.HOLD_CROSS: self._hold_cross,
        }[scenario]

    def _pair(self, rng: random.Random, *, cross: bool) -> tuple[str, str]:
        customers = self._accounts.customers
        shards = self._accounts.shards
        source = rng.choice(shards)
        destination = rng.choice([s for s in shards if s != source]) if cross else source
        debit = rng.choice(customers[source])
        credit = rng.choice([a for a in customers[destination] if a != debit])
        return debit, credit

    async def _transfer(self, debit: str, credit: str, rng: random.Random) -> Outcome:
        status, body = await post_transfer(self._client, debit, credit, rng.randint(1, 100))
        return _single_outcome(status, body)

    async def _single(self, rng: random.Random) -> Outcome:
        return await self._transfer(*self._pair(rng, cross=False), rng)

    async def _cross(self, rng: random.Random) -> Outcome:
        return await self._transfer(*self._pair(rng, cross=True), rng)

    async def _mixed(self, rng: random.Random) -> Outcome:
        return await self._transfer(*self._pair(rng, cross=rng.random() < 0.5), rng)

    async def _hot(self, rng: random.Random) -> Outcome:
        debit = rng.choice(self._accounts.customers[self._accounts.fee_shard])
        return await self._transfer(debit, self._accounts.fee_account, rng)

    async def _hot_spread(self, rng: random.Random) -> Outcome:
        debit = rng.choice(self._accounts.customers[self._accounts.fee_shard])
        return await self._transfer(debit, rng.choice(self._accounts.spread_accounts), rng)

    async def _hold(self, rng: random.Random, *, cross: bool = False) -> Outcome:
        """Authorise, then capture part of it (a final capture)."""
        debit, credit = self._pair(rng, cross=cross)
        amount = rng.randint(2, 100)
        body = {**_transfer_item(debit, credit, amount), "pending": True}
        headers = {"Idempotency-Key": f"bench-{ULID()}"}
        async with self._client.post("/v1/transfers", json=body, headers=headers) as response:
            status, placed = response.status, await response.json(content_type=None)
        if status in ENDPOINT_MISSING or (status == 400 and "pending" in str(placed)):
            raise EndpointUnavailableError(status)
        while status == 202 and placed.get("status") == "processing":
            # Across shards: capturable once the saga opened it.
            await asyncio.sleep(HOLD_OPEN_POLL_S)
            async with self._client.get(f"/v1/transfers/{placed['id']}") as response:
                read, placed = response.status, await response.json(content_type=None)
            if read != 200:
                return _single_outcome(read, placed)
            status = 201 if placed.get("status") == "pending" else 202
        if status != 201:
            return _single_outcome(status, placed)
        path = f"/v1/transfers/{placed['id']}/capture"
        headers = {"Idempotency-Key": f"bench-{ULID()}"}
        capture = {"amount": amount - 1}
        async with self._client.post(path, json=capture, headers=headers) as response:
            status, captured = response.status, await response.json(content_type=None)
        return _single_outcome(201 if status == 200 else status, captured)

    async def _hold_cross(self, rng: random.Random) -> Outcome:
        return await self._hold(rng, cross=True)

    async def _post_batch(self, items: list[dict], *, atomic: bool) -> Outcome:
        headers = {"Idempotency-Key": f"bench-{ULID()}"}
        body = {"transfers": items, "atomic": atomic}
        async with self._client.post("/v1/transfers/batch", json=body, headers=headers) as response:
            return _batch_outcome(response.status, await response.json(content_type=None))

    async def _batch(self, rng: random.Random) -> Outcome:
        items = [
            _transfer_item(*self._pair(rng, cross=False), rng.randint(1, 100))
            for _ in range(self._shape.batch_size)
        ]
        return await self._post_batch(items, atomic=False)

    async def _atomic(self, rng: random.Random) -> Outcome:
        """A payment to a customer on another shard, its fee to the fee account and a tax
        leg to a third shard where there is one: every leg debits the same payer."""
        customers = self._accounts.customers
        shards = self._accounts.shards
        source = rng.choice(shards)
        others = [s for s in shards if s != source] or [source]
        payer = rng.choice(customers[source])
        payee = rng.choice(customers[others[0]])
        tax = rng.choice(customers[others[-1] if len(others) > 1 else others[0]])
        legs = [(payee, 1000), (self._accounts.fee_account, 30), (tax, 20)]
        assert len(legs) == ATOMIC_LEGS
        items = [_transfer_item(payer, credit, amount) for credit, amount in legs]
        return await self._post_batch(items, atomic=True)


async def drive(
    result: ScenarioResult,
    operation: Operation,
    shape: LoadShape,
    *,
    progress: Progress | None = None,
    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError),
) -> None:
    """Send `operation` from `shape.concurrency` clients until `shape.duration_s` passed,
    recording every answer in `result`. A 404 or 405 on the endpoint stops the scenario and marks
    it unavailable; `errors` (no answer at all) are counted as connection errors."""
    assert 0 < shape.concurrency <= 1000, shape.concurrency
    assert shape.duration_s > 0, shape.duration_s
    started = time.perf_counter()
    deadline = started + shape.duration_s

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline and result.unavailable is None:
            sent = time.perf_counter()
            try:
                outcome = await operation(rng)
            except EndpointUnavailableError as missing:
                result.unavailable = f"{ENDPOINT_UNAVAILABLE} (HTTP {missing.args[0]})"
                result.record_error(ENDPOINT_UNAVAILABLE)
                return
            except errors:
                result.record_error(CONNECTION_ERROR)
                continue
            now = time.perf_counter()
            result.record(at_s=now - started, latency_s=now - sent, outcome=outcome)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if progress is not None:
                progress(time.perf_counter() - started, result.transfers)

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(client(i) for i in range(shape.concurrency)))
    finally:
        ticking.cancel()
    result.elapsed_s = time.perf_counter() - started
    if progress is not None:
        progress(result.elapsed_s, result.transfers)
