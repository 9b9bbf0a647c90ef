"""`Idempotency-Key` on POST: the same key and request replay the first response.

Every POST route takes `api.deps.IdempotentDep` and answers through it, so that each one
keeps the same contract without repeating it:

    @router.post("/{account_id}/freeze", response_model=AccountOut, ...)
    async def freeze_account(
        account_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
    ) -> Response:
        async def work(attempt: Attempt | None) -> tuple[int, AccountOut]:
            return 200, await state.accounts.set_status(...)

        return await idempotent.run(None, work)

`run(params, work)` takes the request's validated body model (None for a request without
one) and the work, which gets the `Attempt` to move money under and returns the HTTP status
and the response model. The route chooses the status from the service's domain answer.

The record lives on the shard the (API key, idempotency key) pair hashes to. The work is
exactly-once on its own through the operation log, so this layer only has to make replays
byte-identical and refuse reuse with a different request.

Two requests are the same when their method, path and parameters are: the parameters are
compared as the validated model, so a retry that spells the same JSON with other key order
or spacing (another client library, a re-serialized dict) replays instead of being refused.
"""

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
import structlog
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import Principal
from api.errors import error_body, http_status
from ledger.errors import ErrorCode, LedgerError
from ledger.limits import IDEMPOTENCY_KEY_LENGTH_MAX
from ledger.transfers import TransferStatus
from shards.idempotency import (
    ClaimOutcome,
    IdempotencyStore,
    KeyClaim,
    KeyCompletion,
    KeyRelease,
)

log = structlog.get_logger("ledgerflow.api")

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What every attempt of one idempotent request shares: the operation key its money
    movement is made under (written in the same transaction as the movement, so a retry
    after any crash finds it) and when the request was first seen. Without an
    Idempotency-Key there is no attempt to share."""

    operation_key: str
    first_seen_at: datetime | None
    """None when the request's idempotency record could not be read (its shard is down)."""


Work = Callable[[Attempt | None], Awaitable[tuple[int, BaseModel]]]
Finality = Callable[[int, BaseModel], bool]
"""Whether an answer is final, so a replay may repeat it; else the key is let go."""


def _final_unless_accepted(status: int, _: BaseModel) -> bool:
    return status != 202


def created_status(status: TransferStatus) -> int:
    """The HTTP status of a new transfer's answer: 202 while a saga is settling it or a
    person is to decide it (the answer is not final, so it is not stored for replay), else
    201."""
    return 202 if status in (TransferStatus.PROCESSING, TransferStatus.REQUIRES_REVIEW) else 201


KEY_PATTERN = rf"^[\x20-\x7e]{{1,{IDEMPOTENCY_KEY_LENGTH_MAX}}}$"
"""What an `Idempotency-Key` may be: 1 to the limit of printable ASCII characters."""


def check_key(key: str | None) -> str | None:
    """Validate an `Idempotency-Key` header.

    Raises:
        LedgerError(invalid_request): empty, too long or not printable ASCII.
    """
    if key is None:
        return None
    if re.fullmatch(KEY_PATTERN, key) is None:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} printable ASCII characters",
            "Idempotency-Key",
        )
    return key


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies a request under an Idempotency-Key."""

    canonical: bytes
    """Method, path and the validated parameters as JSON with sorted keys."""

    @classmethod
    def of(cls, method_path: str, params: BaseModel | None) -> "Fingerprint":
        """The fingerprint of `method_path` (`"POST /v1/transfers"`) with `params`, the
        request's validated body model (None for a request without parameters)."""
        head = f"{method_path}\n".encode()
        canonical = (
            b""
            if params is None
            else orjson.dumps(params.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        )
        return cls(canonical=head + canonical)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """One POST request under the idempotency contract, built per request by
    `api.deps.IdempotentDep` (see this module's docstring for the pattern)."""

    store: IdempotencyStore
    principal: Principal
    key: str | None
    """The request's `Idempotency-Key`, checked; None when it sent none."""
    method_path: str
    """`"POST /v1/transfers"`: with the parameters, what the key is bound to."""

    async def run(
        self, params: BaseModel | None, work: Work, *, is_final: "Finality | None" = None
    ) -> Response:
        """Answer the request with `work`, run once per key (`run_idempotent`); `params` is
        the validated body model (None for a request without one); `is_final` says which
        answers are stored for replay (by default all but a 202).

        Raises:
            LedgerError: idempotency_key_reused, idempotency_key_in_flight, or whatever a
                transient failure of `work` raised.
        """
        return await run_idempotent(
            self.store,
            principal=self.principal,
            key=self.key,
            fingerprint=Fingerprint.of(self.method_path, params),
            work=work,
            is_final=is_final or _final_unless_accepted,
        )


def _json(status: int, body: object, *, replayed: bool = False) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


async def run_idempotent(
    store: IdempotencyStore,
    *,
    principal: Principal,
    key: str | None,
    fingerprint: Fingerprint,
    work: Work,
    is_final: Finality = _final_unless_accepted,
) -> Response:
    """Run `work` once per key; replay its stored response for a repeat.

    Business refusals are stored and replayed like successes. A transient failure or an
    answer that is not final (`is_final`; by default a 202) releases the key: a retry of
    the same request runs again (and answers the current state), while other parameters
    are still refused as reuse.

    Raises:
        LedgerError: idempotency_key_reused, idempotency_key_in_flight, or whatever a
            transient failure of `work` raised.
    """
    if key is None:
        status, model = await work(None)
        return _json(status, model.model_dump(mode="json"))
    request_hash = hashlib.sha256(fingerprint.canonical).hexdigest()
    owner = principal.api_key_id
    shard = store.shard_of(owner, key)
    # The request's fingerprint is part of the operation key: once this record has expired,
    # the same key with other parameters moves money anew rather than finding (and
    # replaying) what the old request moved.
    operation_key = f"idem:{owner}:{key}:{request_hash[:32]}"
    try:
        claim = await store.claim(
            shard,
            KeyClaim(owner, key, request_hash, operation_key=operation_key),
        )
    except LedgerError as error:
        if error.code is not ErrorCode.SHARD_UNAVAILABLE:
            raise
        return await _without_record(work, operation_key, shard)
    if claim.outcome is ClaimOutcome.REPLAY:
        assert claim.status is not None
        assert claim.body is not None
        return Response(
            claim.body,
            status_code=claim.status,
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )
    assert claim.first_claimed_at is not None
    attempt = Attempt(
        # Records claimed before operation keys were stored keep the key they began with.
        operation_key=claim.operation_key or f"idem:{owner}:{key}",
        first_seen_at=claim.first_claimed_at,
    )
    final = True
    try:
        status, model = await work(attempt)
        body = orjson.dumps(model.model_dump(mode="json"))
        final = is_final(status, model)
    except LedgerError as error:
        if error.transient:
            await _let_go(store, shard, KeyRelease(owner, key))
            raise
        status = http_status(error.code)
        body = orjson.dumps(error_body(error.code, error.message, error.param))
    except BaseException:
        await _let_go(store, shard, KeyRelease(owner, key))
        raise
    if not final:
        # Still settling: a replay must show the final state, so do not freeze this answer.
        await _let_go(store, shard, KeyRelease(owner, key))
    else:
        await _let_go(store, shard, KeyCompletion(owner, key, status, body))
    return Response(body, status_code=status, media_type="application/json")


async def _let_go(store: IdempotencyStore, shard: int, done: KeyCompletion | KeyRelease) -> None:
    """Complete or release a claimed record. When its shard fails, the answer stands
    anyway: the record stays in flight until its lease ends, and a retry then runs the work
    again, which its operation key makes a replay. Turning an answer the work gave into a
    503 would tell the caller that something failed which did not."""
    try:
        if isinstance(done, KeyCompletion):
            await store.complete(shard, done)
        else:
            await store.release(shard, done)
    except LedgerError as error:
        if error.code is not ErrorCode.SHARD_UNAVAILABLE:
            raise
        log.warning("idempotency record left in flight", shard=shard, key_shard_error=str(error))


async def _without_record(work: Work, operation_key: str, shard: int) -> Response:
    """Serve a request whose idempotency record is on a shard that is down.

    A shard outage must not take down the requests for accounts on the other shards, and
    exactly-once does not depend on the record: the money moves under `operation_key`, so a
    retry (now, or once the shard is back) finds what this attempt did. What the outage
    suspends is the rest of the contract: the answer is not stored for a byte-identical
    replay, and the same key with other parameters is not recognised as reuse meanwhile.
    """
    log.warning("idempotency record unavailable; serving without it", shard=shard)
    status, model = await work(Attempt(operation_key=operation_key, first_seen_at=None))
    return _json(status, model.model_dump(mode="json"))
