"""Another tenant's id is, on every route, an id that does not exist.

Every route that takes an account, transfer, entry or event id (in the path, the body, a
batch item or a cursor) is sent twice by an attacker: once naming one of the victim's
objects, once naming a random well-formed id of the same kind on the same shard (the same
slot for a transfer). Both answers must be the same: status, error `code`, `param` and the
message with its ids blanked out, and for a batch every item's. The victim's objects vary
in everything a leak could show through (limits, state, currency, shard, a hold's state, a
review), amounts are above the victim's `review_above`, and nothing of the victim's may
change: balances, versions, states, limits, transfers and events.
"""

import asyncio
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from ulid import ULID

from ledger import ids
from ledger.ids import ACCOUNT_PREFIX, TRANSFER_PREFIX, entry_id, transfer_slot
from ledger.limits import BIGINT_MAX
from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.cross_shard import SHARD_COUNT, account_on, settled, shard_of
from tests.integration.helpers import post_keyed, transfer_body

AMOUNT = 100
"""Every attacking amount: above the victim's `review_above`, daily and balance limits."""
REVIEW_ABOVE = 10
FUNDED = 1_000
SETTLE_TIMEOUT_S = 60.0
CONCURRENCY = 6


# -- Ids that exist nowhere, shaped like the victim's ------------------------------------


def _millis(ulid_part: str) -> int:
    return ULID.from_str(ulid_part).milliseconds


def random_account_id_like(account_id: str) -> str:
    """A fresh account id made in the same millisecond as `account_id`, on its shard."""
    millis = _millis(account_id.removeprefix(ACCOUNT_PREFIX))
    while True:
        candidate = ids.account_id(millis, secrets.token_bytes(ids.ENTROPY_BYTES))
        if candidate != account_id and shard_of(candidate) == shard_of(account_id):
            return candidate


def random_transfer_id_like(transfer_id: str) -> str:
    """A fresh transfer id made in the same millisecond as `transfer_id`, in its slot."""
    millis = _millis(transfer_id.removeprefix(TRANSFER_PREFIX))
    while True:
        candidate = ids.transfer_id(
            transfer_slot(transfer_id), millis, secrets.token_bytes(ids.ENTROPY_BYTES)
        )
        if candidate != transfer_id:
            return candidate


def random_event_id_like(event_id: str) -> str:
    """An event id of the same microsecond and shard as `event_id`, another sequence
    (`evt_`, 14 hex digits of time, 4 of shard, 12 of sequence)."""
    assert len(event_id) == len("evt_") + 14 + 4 + 12, event_id
    while True:
        candidate = event_id[: len("evt_") + 18] + secrets.token_hex(6)
        if candidate != event_id:
            return candidate


# -- One request, sent with an id, and what its answer shows -------------------------------


@dataclass(frozen=True)
class Call:
    """One request. A POST without `key` gets a fresh Idempotency-Key."""

    method: str
    path: str
    body: dict | None = None
    params: dict | None = None
    key: str | None = None


@dataclass(frozen=True)
class Probe:
    """One request made with the victim's id and with a random id of the same kind."""

    what: str
    victim_id: str
    random_id: str
    call: Callable[[str], Call]


_IDS = re.compile(r"\b(?:acct|tr|evt|ent)_[0-9A-Za-z_]+")


def _error(error: dict) -> tuple:
    return (error["code"], error["param"], _IDS.sub("<id>", error["message"]))


def _item(item: dict) -> tuple:
    if item["error"] is not None:
        return (item["status"], *_error(item["error"]))
    return (item["status"], "transfer", item["transfer"]["status"])


def outcome(response: httpx.Response) -> tuple:
    """What an answer shows of the id it was given: status, error code, param and message
    (ids blanked); a list's ids; a batch's items; a transfer's status."""
    body = response.json()
    replayed = response.headers.get("Idempotent-Replayed")
    if "error" in body:
        return (response.status_code, *_error(body["error"]), replayed)
    if body.get("object") == "list":
        return (
            response.status_code,
            "list",
            tuple(x["id"] for x in body["data"]),
            body["has_more"],
        )
    if "atomic" in body:
        return (response.status_code, "batch", tuple(_item(i) for i in body["data"]), replayed)
    return (response.status_code, body.get("object"), body.get("status"), replayed)


def _settling(response: httpx.Response) -> bool:
    """A 202 still being settled: a retry under the same key answers it as it stands."""
    body = response.json()
    if response.status_code == 202:
        return body.get("status") == "processing"
    if response.status_code == 200 and "atomic" in body:
        return any(
            i["status"] == 202 and i["transfer"]["status"] == "processing" for i in body["data"]
        )
    return False


async def answer(api: httpx.AsyncClient, call: Call) -> tuple:
    """Send `call`; a 202 still settling is sent again under its key until it is final,
    so both ids are compared on what they end as (not on how fast a saga ran)."""
    key = call.key or f"tenancy-{ULID()}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    first: httpx.Response | None = None
    while True:
        if call.method == "POST":
            response = await post_keyed(api, call.path, call.body, key)
        else:
            assert call.method == "GET", call
            assert call.body is None, call
            response = await api.get(call.path, params=call.params)
        first = first or response
        if not _settling(response):
            break
        assert loop.time() < deadline, f"{call} still settling: {response.text}"
        await asyncio.sleep(0.3)
    shown = outcome(response)
    if response is not first:
        # A retry of a 202 replays by design; only the first answer's header tells.
        shown = (*shown[:-1], first.headers.get("Idempotent-Replayed"))
    return shown


async def compare(api: httpx.AsyncClient, probes: list[Probe]) -> tuple[list[str], list[tuple]]:
    """Send every probe with both ids (a few probes at a time, each probe's two requests
    one after the other); returns a line per probe whose answers differ, and the answers
    to the random ids."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(probe: Probe) -> tuple[str | None, tuple]:
        async with gate:
            victim = await answer(api, probe.call(probe.victim_id))
            unknown = await answer(api, probe.call(probe.random_id))
        if victim == unknown:
            return None, unknown
        return (
            f"{probe.what}\n      victim's {probe.victim_id}: {victim}"
            f"\n      random   {probe.random_id}: {unknown}"
        ), unknown

    found = await asyncio.gather(*(one(p) for p in probes))
    return [m for m, _ in found if m is not None], [o for _, o in found]


# -- The victim's books --------------------------------------------------------------------


@dataclass
class Victim:
    """The victim tenant's accounts and transfers, each labelled with what it is."""

    accounts: dict[str, dict] = field(default_factory=dict)
    transfers: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    keyed: list[tuple[str, dict]] = field(default_factory=list)
    """Requests the victim made under an Idempotency-Key of its own: (key, body)."""


async def _posted(api: httpx.AsyncClient, body: dict, key: str | None = None) -> dict:
    """POST a transfer and wait until it is no longer processing; returns it."""
    response = await post_keyed(api, "/v1/transfers", body, key)
    assert response.status_code in (201, 202), response.text
    made = response.json()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while made["status"] == "processing":
        assert loop.time() < deadline, made
        await asyncio.sleep(0.1)
        made = (await api.get(f"/v1/transfers/{made['id']}")).json()
    return made


async def _ok(response: Awaitable[httpx.Response]) -> dict:
    answered = await response
    assert answered.status_code in (200, 201), answered.text
    return answered.json()


async def victim_books(victim: httpx.AsyncClient) -> Victim:
    """Accounts of every kind a leak could show through, on every shard, and transfers in
    every state (posted, holds open, captured in part, voided, waiting for review, decided,
    a delayed credit), on one shard and across two."""
    books = Victim()
    funding = {s: await account_on(victim, s, allow_overdraft=True) for s in range(SHARD_COUNT)}
    eur_funding = await account_on(victim, 0, currency="EUR", allow_overdraft=True)

    async def opened(
        what: str,
        shard: int,
        *,
        funded: int = FUNDED,
        currency: str = "USD",
        limits: dict | None = None,
        **kwargs: object,
    ) -> dict:
        account = await account_on(victim, shard, currency=currency, **kwargs)
        source = eur_funding if currency == "EUR" else funding[shard]
        if funded:
            await _posted(victim, transfer_body(source, account, funded, currency=currency))
        if limits:
            await _ok(post_keyed(victim, f"/v1/accounts/{account['id']}/limits", limits))
        books.accounts[what] = account
        return account

    plain = [await opened(f"plain on shard {s}", s) for s in range(SHARD_COUNT)]
    await opened("unfunded, allow_overdraft", 1, funded=0, allow_overdraft=True)
    reviewed = [
        await opened(
            f"review_above {REVIEW_ABOVE} on shard {s}", s, limits={"review_above": REVIEW_ABOVE}
        )
        for s in (2, 3)
    ]
    await opened("daily_outgoing 50", 3, limits={"daily_outgoing": 50})
    await opened("max_balance 50", 0, funded=20, limits={"max_balance": 50})
    await opened("min_available 5000", 1, limits={"min_available": 5_000})
    await opened(
        "review_above 10, daily_outgoing 50, max_balance 1000",
        0,
        limits={
            "review_above": REVIEW_ABOVE,
            "daily_outgoing": 50,
            "max_balance": 1_000,
        },
    )
    frozen = await opened("frozen", 2)
    await _ok(post_keyed(victim, f"/v1/accounts/{frozen['id']}/freeze"))
    closed = await opened("closed", 3, funded=0)
    await _ok(post_keyed(victim, f"/v1/accounts/{closed['id']}/close"))
    await opened("EUR", 0, currency="EUR")

    def to(payer: dict, payee: dict, **extra: object) -> dict:
        return transfer_body(payer, payee, AMOUNT, **extra)

    async def keyed(body: dict) -> dict:
        key = f"victim-{ULID()}"
        books.keyed.append((key, body))
        return await _posted(victim, body, key)

    made = books.transfers
    made["posted, one shard"] = await keyed(to(plain[0], funding[0]))
    made["posted, across shards"] = await keyed(to(plain[1], funding[2]))
    made["hold, one shard"] = await keyed(to(plain[2], funding[2], pending=True))
    made["hold, across shards"] = await _posted(
        victim, to(plain[3], funding[0], pending=True, expires_in=3_600)
    )
    captured = await _posted(victim, to(plain[0], funding[0], pending=True))
    await _ok(
        post_keyed(
            victim, f"/v1/transfers/{captured['id']}/capture", {"amount": 30, "final": False}
        )
    )
    made["hold captured in part"] = captured
    voided = await _posted(victim, to(plain[1], funding[1], pending=True))
    await _ok(post_keyed(victim, f"/v1/transfers/{voided['id']}/void"))
    made["hold voided"] = voided
    later = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    made["delayed credit"] = await _posted(victim, to(plain[2], funding[2], available_on=later))
    review_shard = reviewed[0]["shard"]
    made["waiting for review, one shard"] = await _posted(
        victim, to(reviewed[0], funding[review_shard])
    )
    made["waiting for review, across shards"] = await _posted(
        victim, to(reviewed[0], funding[(review_shard + 1) % SHARD_COUNT])
    )
    rejected = await _posted(victim, to(reviewed[1], funding[reviewed[1]["shard"]]))
    await _ok(post_keyed(victim, f"/v1/transfers/{rejected['id']}/reject"))
    made["review rejected"] = rejected
    approved = await _posted(victim, to(reviewed[1], funding[0]))
    await _ok(post_keyed(victim, f"/v1/transfers/{approved['id']}/approve"))
    made["review approved, across shards"] = approved
    await settled(victim)
    for what, transfer in made.items():
        made[what] = (await victim.get(f"/v1/transfers/{transfer['id']}")).json()
    assert {w: t["status"] for w, t in made.items()} == {
        "posted, one shard": "posted",
        "posted, across shards": "posted",
        "hold, one shard": "pending",
        "hold, across shards": "pending",
        "hold captured in part": "pending",
        "hold voided": "voided",
        "delayed credit": "posted",
        "waiting for review, one shard": "requires_review",
        "waiting for review, across shards": "requires_review",
        "review rejected": "failed",
        "review approved, across shards": "posted",
    }
    states = {
        what: (await _read(victim, f"/v1/accounts/{account['id']}"))["status"]
        for what, account in books.accounts.items()
    }
    assert states == {w: w if w in ("frozen", "closed") else "active" for w in books.accounts}
    books.events = (await _read(victim, "/v1/events", limit=100))["data"]
    assert len(books.events) < 100
    return books


async def _read(api: httpx.AsyncClient, path: str, **params: object) -> dict:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def snapshot(victim: httpx.AsyncClient, books: Victim) -> dict:
    """Everything of the victim's an attack could change, as the victim reads it (every
    object the attacker is sent to exists)."""
    seen: dict[str, object] = {}
    for what, account in books.accounts.items():
        seen[f"account {what}"] = await _read(victim, f"/v1/accounts/{account['id']}")
        seen[f"availability {what}"] = await _read(
            victim, f"/v1/accounts/{account['id']}/availability"
        )
    for what, transfer in books.transfers.items():
        seen[f"transfer {what}"] = await _read(victim, f"/v1/transfers/{transfer['id']}")
    for event in books.events:
        seen[f"event {event['id']}"] = await _read(victim, f"/v1/events/{event['id']}")
    seen["events"] = await _read(victim, "/v1/events", limit=100)
    seen["transfers"] = await _read(victim, "/v1/transfers", limit=100)
    seen["accounts"] = await _read(victim, "/v1/accounts", limit=100)
    return seen


# -- The attacker's own accounts, and every probe ---------------------------------------


@dataclass
class Attacker:
    """The attacker's accounts on each shard: plain, allowed to overdraw (its funds are
    never short), without funds, and frozen."""

    own: dict[int, dict]
    funding: dict[int, dict]
    empty: dict[int, dict]
    frozen: dict[int, dict]


async def attacker_books(api: httpx.AsyncClient) -> Attacker:
    shards = range(SHARD_COUNT)
    attacker = Attacker(
        own={s: await account_on(api, s) for s in shards},
        funding={s: await account_on(api, s, allow_overdraft=True) for s in shards},
        empty={s: await account_on(api, s) for s in shards},
        frozen={s: await account_on(api, s) for s in shards},
    )
    for account in attacker.frozen.values():
        await _ok(post_keyed(api, f"/v1/accounts/{account['id']}/freeze"))
    return attacker


async def attacker_moves(api: httpx.AsyncClient, attacker: Attacker) -> None:
    """Some transfers and an account of the attacker's own, so every list a cursor pages
    through has rows on both sides of the victim's objects."""
    for shard in range(SHARD_COUNT):
        body = transfer_body(attacker.funding[shard], attacker.own[shard], FUNDED)
        assert (await post_keyed(api, "/v1/transfers", body)).status_code == 201
    await account_on(api, 0)


_TRANSFER_VARIANTS: dict[str, dict] = {
    "plain": {},
    "pending": {"pending": True},
    "pending, expires_in 60": {"pending": True, "expires_in": 60},
    "available_on in a minute": {},  # filled in when sent: the instant must be ahead
    "amount 2^63-1": {"amount": BIGINT_MAX},
}


def _variant(name: str) -> dict:
    if name == "available_on in a minute":
        return {"available_on": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
    return dict(_TRANSFER_VARIANTS[name])


def _leg(side: str, account_id: str, other: dict, **extra: object) -> dict:
    """A transfer naming `account_id` on `side` and the attacker's `other` account on the
    other side."""
    debit, credit = (account_id, other["id"]) if side == "debit" else (other["id"], account_id)
    return {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": AMOUNT,
        "currency": "USD",
        **extra,
    }


def _partners(attacker: Attacker, side: str, shard: int) -> list[tuple[str, dict, bool]]:
    """The attacker's accounts for the other side of a transfer naming an account of
    `shard` on `side`: (what, account, whether every variant is tried with it)."""
    other = (shard + 1) % SHARD_COUNT
    if side == "debit":
        return [
            ("own account on the same shard", attacker.own[shard], True),
            ("own account on another shard", attacker.own[other], True),
            ("own frozen account on the same shard", attacker.frozen[shard], False),
            ("own frozen account on another shard", attacker.frozen[other], False),
        ]
    return [
        ("own overdraft account on the same shard", attacker.funding[shard], True),
        ("own overdraft account on another shard", attacker.funding[other], True),
        ("own account without funds on the same shard", attacker.empty[shard], False),
        ("own account without funds on another shard", attacker.empty[other], False),
        ("own frozen account on the same shard", attacker.frozen[shard], False),
    ]


def account_probes(attacker: Attacker, what: str, account: dict) -> list[Probe]:
    """Every route of one of the victim's accounts, and every transfer naming it."""
    victim_id = account["id"]
    random_id = random_account_id_like(victim_id)
    shard = account["shard"]
    own = attacker.own[shard]["id"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()

    def probe(route: str, call: Callable[[str], Call]) -> Probe:
        return Probe(f"{route}  [{what}, shard {shard}]", victim_id, random_id, call)

    probes = [
        probe("GET account", lambda i: Call("GET", f"/v1/accounts/{i}")),
        probe("GET balance", lambda i: Call("GET", f"/v1/accounts/{i}/balance")),
        probe(
            "GET balance at a minute ago",
            lambda i: Call("GET", f"/v1/accounts/{i}/balance", params={"at": past}),
        ),
        probe(
            "GET balance at a minute ahead",
            lambda i: Call("GET", f"/v1/accounts/{i}/balance", params={"at": future}),
        ),
        probe(
            "GET balance at garbage",
            lambda i: Call("GET", f"/v1/accounts/{i}/balance", params={"at": "yesterday"}),
        ),
        probe(
            "POST limits review_above 1",
            lambda i: Call("POST", f"/v1/accounts/{i}/limits", {"review_above": 1}),
        ),
        probe("POST limits none", lambda i: Call("POST", f"/v1/accounts/{i}/limits", {})),
        probe(
            "POST limits max_balance 0, daily_outgoing 1, min_available 0",
            lambda i: Call(
                "POST",
                f"/v1/accounts/{i}/limits",
                {"max_balance": 0, "daily_outgoing": 1, "min_available": 0},
            ),
        ),
        probe("POST freeze", lambda i: Call("POST", f"/v1/accounts/{i}/freeze")),
        probe("POST unfreeze", lambda i: Call("POST", f"/v1/accounts/{i}/unfreeze")),
        probe("POST close", lambda i: Call("POST", f"/v1/accounts/{i}/close")),
        probe("GET availability", lambda i: Call("GET", f"/v1/accounts/{i}/availability")),
        probe("GET entries", lambda i: Call("GET", f"/v1/accounts/{i}/entries")),
        probe(
            "GET entries starting_after its first entry",
            lambda i: Call(
                "GET", f"/v1/accounts/{i}/entries", params={"starting_after": entry_id(i, 1)}
            ),
        ),
        probe(
            "GET entries ending_before its first entry, limit 1",
            lambda i: Call(
                "GET",
                f"/v1/accounts/{i}/entries",
                params={"ending_before": entry_id(i, 1), "limit": 1},
            ),
        ),
        probe(
            "GET own account's entries starting_after its entry",
            lambda i: Call(
                "GET", f"/v1/accounts/{own}/entries", params={"starting_after": entry_id(i, 1)}
            ),
        ),
    ]
    for side in ("debit", "credit"):
        for partner, other, every_variant in _partners(attacker, side, shard):
            for variant in _TRANSFER_VARIANTS if every_variant else ("plain", "pending"):
                probes.append(
                    probe(
                        f"POST transfer as {side}_account_id, {variant}, {partner}",
                        lambda i, s=side, o=other, v=variant: Call(
                            "POST", "/v1/transfers", _leg(s, i, o, **_variant(v))
                        ),
                    )
                )
            if not every_variant:
                continue
            # A batch item answers as the single request would; an atomic batch refuses
            # every leg for the one refused.
            probes.append(
                probe(
                    f"POST batch (own leg, then {side}_account_id plain, pending and "
                    f"available_on), {partner}",
                    lambda i, s=side, o=other: Call(
                        "POST",
                        "/v1/transfers/batch",
                        {
                            "transfers": [
                                _own_leg(attacker, shard),
                                _leg(s, i, o),
                                _leg(s, i, o, pending=True),
                                _leg(s, i, o, **_variant("available_on in a minute")),
                            ]
                        },
                    ),
                )
            )
            probes.append(
                probe(
                    f"POST atomic batch (own leg, then {side}_account_id), {partner}",
                    lambda i, s=side, o=other: Call(
                        "POST",
                        "/v1/transfers/batch",
                        {
                            "atomic": True,
                            "transfers": [_own_leg(attacker, o["shard"]), _leg(s, i, o)],
                        },
                    ),
                )
            )
    return probes


def _own_leg(attacker: Attacker, shard: int) -> dict:
    return transfer_body(attacker.funding[shard], attacker.own[shard], AMOUNT)


def account_list_probes(what: str, account: dict) -> list[Probe]:
    """The tenant's account list paged from one of the victim's accounts."""
    victim_id = account["id"]
    random_id = random_account_id_like(victim_id)
    return [
        Probe(
            f"GET accounts {cursor}  [{what}]",
            victim_id,
            random_id,
            lambda i, c=cursor: Call("GET", "/v1/accounts", params={c: i, "limit": 3}),
        )
        for cursor in ("starting_after", "ending_before")
    ]


def transfer_probes(what: str, transfer: dict) -> list[Probe]:
    """Every route of one of the victim's transfers."""
    victim_id = transfer["id"]
    random_id = random_transfer_id_like(victim_id)
    where = "across shards" if transfer["cross_shard"] else "one shard"
    routes: list[tuple[str, Callable[[str], Call]]] = [
        ("GET transfer", lambda i: Call("GET", f"/v1/transfers/{i}")),
        ("POST capture (all)", lambda i: Call("POST", f"/v1/transfers/{i}/capture", {})),
        (
            "POST capture 1, not final",
            lambda i: Call("POST", f"/v1/transfers/{i}/capture", {"amount": 1, "final": False}),
        ),
        (
            "POST capture more than held",
            lambda i: Call("POST", f"/v1/transfers/{i}/capture", {"amount": 10**12}),
        ),
        ("POST void", lambda i: Call("POST", f"/v1/transfers/{i}/void")),
        (
            "POST increment",
            lambda i: Call("POST", f"/v1/transfers/{i}/increment", {"amount": AMOUNT}),
        ),
        ("POST approve", lambda i: Call("POST", f"/v1/transfers/{i}/approve")),
        ("POST reject", lambda i: Call("POST", f"/v1/transfers/{i}/reject")),
    ]
    return [
        Probe(f"{route}  [{what}; {where}]", victim_id, random_id, call) for route, call in routes
    ]


def transfer_list_probes(what: str, transfer: dict) -> list[Probe]:
    """The tenant's transfer list paged from one of the victim's transfers."""
    victim_id = transfer["id"]
    random_id = random_transfer_id_like(victim_id)
    return [
        Probe(
            f"GET transfers {cursor}  [{what}]",
            victim_id,
            random_id,
            lambda i, c=cursor: Call("GET", "/v1/transfers", params={c: i, "limit": 3}),
        )
        for cursor in ("starting_after", "ending_before")
    ]


def event_probes(event: dict) -> list[Probe]:
    """One of the victim's events read, and the event feed paged from it."""
    victim_id = event["id"]
    random_id = random_event_id_like(victim_id)
    what = f"[{event['type']} event]"
    probes = [
        Probe(f"GET event  {what}", victim_id, random_id, lambda i: Call("GET", f"/v1/events/{i}"))
    ]
    for cursor in ("starting_after", "ending_before"):
        probes.append(
            Probe(
                f"GET events {cursor}  {what}",
                victim_id,
                random_id,
                lambda i, c=cursor: Call("GET", "/v1/events", params={c: i, "limit": 3}),
            )
        )
        probes.append(
            Probe(
                f"GET events type=transfer.posted {cursor}  {what}",
                victim_id,
                random_id,
                lambda i, c=cursor: Call(
                    "GET", "/v1/events", params={c: i, "limit": 3, "type": "transfer.posted"}
                ),
            )
        )
    return probes


def key_probes(attacker: Attacker, books: Victim) -> list[Probe]:
    """The victim's Idempotency-Keys sent with the attacker's API key are keys never used:
    they replay nothing of the victim's, and refuse no request of the attacker's as reused
    (each probe uses a key of its own: a key the attacker itself reused is refused)."""
    (first_key, first), (second_key, _), (third_key, third) = books.keyed
    own = _own_leg(attacker, 0)
    return [
        Probe(
            "POST the victim's own request under its Idempotency-Key",
            first_key,
            f"fresh-{ULID()}",
            lambda k: Call("POST", "/v1/transfers", first, key=k),
        ),
        Probe(
            "POST an own transfer under the victim's Idempotency-Key",
            second_key,
            f"fresh-{ULID()}",
            lambda k: Call("POST", "/v1/transfers", own, key=k),
        ),
        Probe(
            "POST a batch item keyed with the victim's Idempotency-Key, the victim's body",
            third_key,
            f"fresh-{ULID()}",
            lambda k: Call(
                "POST", "/v1/transfers/batch", {"transfers": [{**third, "idempotency_key": k}]}
            ),
        ),
    ]


def _one_per_type(events: list[dict]) -> list[dict]:
    seen: dict[tuple[str, str], dict] = {}
    for event in events:
        seen.setdefault((event["type"], event["id"][len("evt_") + 14 : len("evt_") + 18]), event)
    return list(seen.values())


async def test_another_tenants_id_is_an_id_that_does_not_exist_on_every_route(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster, books: None
) -> None:
    """Every route taking an account, transfer, entry or event id answers another tenant's
    id exactly as a random well-formed id of the same shard (status, code, param, message),
    whatever that object's limits, state or shard, and nothing of the victim's changes."""
    attacker = await attacker_books(api)
    await attacker_moves(api, attacker)
    async with other_tenant(api_url, cluster) as victim:
        victim_side = await victim_books(victim)
        await attacker_moves(api, attacker)
        before = await snapshot(victim, victim_side)

        listing = [
            p for what, a in victim_side.accounts.items() for p in account_list_probes(what, a)
        ] + [p for what, t in victim_side.transfers.items() for p in transfer_list_probes(what, t)]
        listing += [p for e in _one_per_type(victim_side.events) for p in event_probes(e)]
        # Lists first and alone: a page is the same for both cursors only while no new row
        # of the attacker's appears between the two requests.
        mismatches, pages = await compare(api, listing)
        # The pages are not all empty: a cursor leak would show in which rows they hold.
        assert sum(1 for p in pages if p[:2] == (200, "list") and p[2]) >= len(pages) // 3, pages

        probes = [
            p for what, a in victim_side.accounts.items() for p in account_probes(attacker, what, a)
        ]
        probes += [p for what, t in victim_side.transfers.items() for p in transfer_probes(what, t)]
        probes += key_probes(attacker, victim_side)
        found, answers = await compare(api, probes)
        mismatches += found

        await settled(api)
        after = await snapshot(victim, victim_side)
        changed = [k for k in before if before[k] != after[k]]

        # Leave nothing open: the victim ends its holds and reviews.
        for what in ("hold, one shard", "hold, across shards", "hold captured in part"):
            await _ok(post_keyed(victim, f"/v1/transfers/{victim_side.transfers[what]['id']}/void"))
        for what in ("waiting for review, one shard", "waiting for review, across shards"):
            await _ok(
                post_keyed(victim, f"/v1/transfers/{victim_side.transfers[what]['id']}/reject")
            )
        await settled(victim)

    shown = Counter(a[:3] if a[1] != "batch" else a[:2] for a in answers)
    print(f"\n{len(listing) + len(probes)} probes, {len(mismatches)} mismatches; random ids got")
    for what, count in shown.most_common():
        print(f"  {count:4} x {what}")
    for line in mismatches:
        print(f"  MISMATCH {line}")
    for key in changed:
        print(f"  CHANGED {key}:\n      before {before[key]}\n      after  {after[key]}")
    assert not changed, f"the attacker changed the victim's {changed}"
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)
