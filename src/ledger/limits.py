"""Every limit of the system, in one place, with the relations between them asserted.

Names carry their unit last (`_s`, `_ms`, `_bytes`, `_max`).
"""

from typing import Final

BIGINT_MAX: Final = 2**63 - 1
"""Largest value a PostgreSQL bigint holds; every amount and every sum stays within it."""

TOTAL_MAX: Final = 10**38
"""Exclusive bound of an account's running totals (numeric(38, 0) on the shard): at one
bigint-sized transfer per microsecond it takes three hundred years to reach."""
assert BIGINT_MAX < TOTAL_MAX

SLOT_COUNT: Final = 4096
"""Fixed number of hash slots; the shard map assigns slot ranges to instances."""

SHARD_COUNT_MAX: Final = 256

METADATA_KEYS_MAX: Final = 50
METADATA_KEY_LENGTH_MAX: Final = 40
METADATA_VALUE_LENGTH_MAX: Final = 500

REQUEST_BODY_BYTES_MAX: Final = 1024 * 1024
REQUEST_ID_LENGTH_MAX: Final = 128
"""An incoming `X-Request-ID` longer than this is replaced by one of ours: it is logged and
echoed on every request, so its size is bounded like every other input."""
IDEMPOTENCY_KEY_LENGTH_MAX: Final = 255
IDEMPOTENCY_KEY_TTL_S: Final = 24 * 3600
IDEMPOTENCY_LEASE_S: Final = 30
"""An in-flight idempotency record older than this is presumed abandoned and may be retried."""
IDEMPOTENCY_BATCH_SIZE_MAX: Final = 512
"""Idempotency records written per statement (`shards.idempotency.IdempotencyStore`)."""

AUTH_CACHE_TTL_S: Final = 60.0
"""How long an API process trusts a key it looked up: a revocation takes effect within it."""
AUTH_CACHE_ENTRIES_MAX: Final = 10_000
AUTH_REFUSAL_CACHE_TTL_S: Final = 5.0
"""How long an unknown key is refused without a lookup: short, so a key created a moment
after a typo works almost at once."""
AUTH_REFUSAL_CACHE_ENTRIES_MAX: Final = 10_000

PAGE_SIZE_DEFAULT: Final = 10
PAGE_SIZE_MAX: Final = 100

POSTING_BATCH_SIZE_MAX: Final = 512
"""Transfers posted in one group-commit transaction on one shard."""

TRANSFER_ID_LENGTH: Final = 29
"""`tr_` and a 26-character ULID."""
SEARCH_ATTRIBUTE_VALUE_BYTES_MAX: Final = 2048
"""Temporal's default limit on one search attribute value (Temporal Cloud's too); a start
whose value is larger is refused."""
SAGA_BATCH_SIZE_MAX: Final = 60
"""Cross-shard transfers settled by one saga workflow. Bound by the keyword list of the
batch's transfer ids, which must fit one search attribute value (63 ids as JSON); the
payloads stay far below 256 KB."""

BATCH_TRANSFERS_MAX: Final = 1000
"""Items of one `POST /v1/transfers/batch`. A thousand ordinary items (two ids, an amount,
a currency, a little metadata and an idempotency key: about 300 bytes each) stay well
within `REQUEST_BODY_BYTES_MAX`, so the route shares the API's body limit."""
ATOMIC_BATCH_LEGS_MAX: Final = BATCH_TRANSFERS_MAX
"""Items of one atomic batch: as many as any batch. Its legs travel as one workflow input,
which Temporal refuses above `TEMPORAL_PAYLOAD_BYTES_MAX`; the request body limit keeps
them below it (asserted below), and each shard's step posts them in transactions of at
most `POSTING_BATCH_SIZE_MAX`."""
ATOMIC_LEG_OVERHEAD_BYTES: Final = 400
"""What a leg adds in the workflow input to what its item took in the request body (its
ids, operation key and shards)."""
TEMPORAL_PAYLOAD_BYTES_MAX: Final = 2 * 1024 * 1024
"""Temporal's default limit on one payload (a workflow input)."""

SAGA_BATCH_WINDOW_MS_MAX: Final = 1000
SAGA_BATCH_WINDOW_MS_DEFAULT: Final = 5
"""How long the API gathers cross-shard transfers for one saga."""
SAGA_SYNC_WAIT_S_MAX: Final = 30.0
SAGA_SYNC_WAIT_S_DEFAULT: Final = 1.0
"""How long a cross-shard request waits for its saga before answering 202 `processing`."""

POOL_SIZE_MAX: Final = 64
POOL_SIZE_DEFAULT: Final = 10
"""Connections per shard in a serving process (`LEDGERFLOW_POOL_SIZE_MAX`)."""
POOL_ACQUIRE_TIMEOUT_S: Final = 5.0
"""Longest wait for a pooled connection (a new one included) before the shard counts as
unavailable for this request."""
CONNECT_TIMEOUT_S: Final = 4.0
"""Longest wait for a new connection to a shard to be established."""
BATCH_QUEUE_SIZE_MAX: Final = 8192
"""Items waiting per shard in one batcher (postings, idempotency records); more is 503
`shard_unavailable` with Retry-After rather than memory that grows with the backlog."""
STATEMENT_TIMEOUT_MS: Final = 6_000
"""Deadline of one statement of the serving path, enforced by the shard and, for a shard
that stops answering altogether, by the client a second later."""
LOCK_TIMEOUT_MS: Final = 5_000
"""A posting batch holds its account locks for a few round trips; on a busy machine a
batch may wait seconds behind others on a hot account, which is not a fault."""
REPORT_STATEMENT_TIMEOUT_MS: Final = 600_000
"""Deadline of one statement of `ledgerflow verify` and the other reports that scan whole
tables; they run on connections of their own, never on the serving path."""
COMMAND_TIMEOUT_MARGIN_S: Final = 1.0

ACTIVITY_START_TO_CLOSE_S: Final = 30
ACTIVITY_RETRY_INTERVAL_MAX_S: Final = 30
CREDIT_ATTEMPTS_MAX: Final = 0
"""0 means unlimited: once reserved, a saga must finish; business refusals are non-retryable."""

OUTBOX_SWEEP_INTERVAL_S: Final = 10
"""Pause of the long-running sweeper workflow between two sweeps (a durable timer)."""
OUTBOX_SWEEPS_PER_RUN_MAX: Final = 360
"""Sweeps one run of the sweeper makes before it continues as new (an hour at the interval
above). Each sweep adds about twelve events to the history (the activity, the timer and
their workflow tasks; tests/replay/histories/sweep-forever.json), so a run stays near
4,300 events, a tenth of Temporal's 51,200, and replaying it on another worker stays cheap."""
OUTBOX_STALE_AFTER_S: Final = 15
"""An outbox row unclaimed (or claimed without a running saga) for this long is swept."""
OUTBOX_SWEEP_ROWS_MAX: Final = 2000

SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT: Final = 1
"""Settlement workflows one API process keeps running per (source shard, currency).

While one runs, the next batch keeps gathering, so batches grow with load the way group
commit does, and Temporal sees a bounded number of workflows instead of one per transfer.
Measured on 2 cores, one in flight beats two at every load: at 32 concurrent clients 95
against 79 transfers/s (p50 308 against 384 ms), at 384 clients about 370 against 320.
"""
SAGA_IN_FLIGHT_PER_SOURCE_MAX: Final = 16
SAGA_IN_FLIGHT_WAIT_S: Final = 5.0
"""A batch counts against the in-flight cap at most this long (a stalled worker must not
stop the dispatcher; the workflow itself carries on)."""
TEMPORAL_RPC_TIMEOUT_S: Final = 5.0
"""Deadline of one call to Temporal from the API (starting a workflow, describing one)."""

ACTIVITY_RETRY_INITIAL_S: Final = 0.5
ACTIVITY_RETRY_BACKOFF: Final = 2.0
LOCAL_RETRY_THRESHOLD_S: Final = 1.0
"""A saga step (a local activity) retries inside the worker while its backoff is at most
this; longer backoffs wait on a durable timer, so a worker never holds a failing step
(and cannot shut down) while a shard is down."""
SWEEP_START_TO_CLOSE_S: Final = 60
SWEEP_HEARTBEAT_TIMEOUT_S: Final = 20
SWEEP_ATTEMPTS_MAX: Final = 3
"""The sweeper sweeps again after its next pause anyway, so one sweep retries briefly."""

WORKER_GRACEFUL_SHUTDOWN_S: Final = 40
"""After SIGTERM, a worker stops polling and gives running activities this long to finish
before it cancels them (`Worker(graceful_shutdown_timeout=...)`). A saga step is bounded by
`ACTIVITY_START_TO_CLOSE_S`, so one that has started finishes; a longer sweep is cancelled
and simply runs again on another worker."""
WORKER_SHUTDOWN_MARGIN_S: Final = 10
"""What the process needs after the graceful period: cancelling, closing the shard pools,
flushing logs."""
WORKER_TERMINATION_GRACE_PERIOD_S: Final = 60
"""`terminationGracePeriodSeconds` of the worker pods (deploy/k8s/base/worker.yaml; a unit
test checks that they agree): Kubernetes kills the process (SIGKILL) this long after
SIGTERM."""

STUCK_TRANSFERS_LIMIT_MAX: Final = 1000

RATE_LIMIT_PER_S_DEFAULT: Final = 2000.0
"""Requests per second per API key per API process. Above what one process serves today
(about 1,000 transfers/s in `ledgerflow bench`), so benchmarks and single-tenant deployments
never see a 429; a multi-tenant deployment sets its fair share. 0 turns limiting off."""
RATE_LIMIT_BURST_DEFAULT: Final = 4000
"""Requests a key may send at once after being idle (the bucket's size)."""
RATE_LIMIT_PER_S_MAX: Final = 1_000_000.0
RATE_LIMIT_BURST_MAX: Final = 1_000_000
RATE_LIMIT_KEYS_MAX: Final = 10_000
"""Token buckets kept per process; the least recently used is dropped beyond this."""
RATE_LIMIT_RETRY_AFTER_S_MAX: Final = 60

assert 0 < POSTING_BATCH_SIZE_MAX <= 10_000
assert 0 < SAGA_BATCH_SIZE_MAX <= POSTING_BATCH_SIZE_MAX
# The ids as a JSON list: brackets, and per id two quotes and a comma.
assert 2 + SAGA_BATCH_SIZE_MAX * (TRANSFER_ID_LENGTH + 3) <= SEARCH_ATTRIBUTE_VALUE_BYTES_MAX
assert PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX
assert 1 <= POOL_SIZE_DEFAULT <= POOL_SIZE_MAX
assert 0 <= SAGA_SYNC_WAIT_S_DEFAULT <= SAGA_SYNC_WAIT_S_MAX
assert 0 <= SAGA_BATCH_WINDOW_MS_DEFAULT <= SAGA_BATCH_WINDOW_MS_MAX
assert SAGA_BATCH_SIZE_MAX <= BATCH_TRANSFERS_MAX
assert ATOMIC_BATCH_LEGS_MAX <= BATCH_TRANSFERS_MAX
# Whatever its items carry, an atomic batch whose body the API took fits one payload.
assert (
    REQUEST_BODY_BYTES_MAX + ATOMIC_BATCH_LEGS_MAX * ATOMIC_LEG_OVERHEAD_BYTES
    < TEMPORAL_PAYLOAD_BYTES_MAX
)
assert AUTH_REFUSAL_CACHE_TTL_S < AUTH_CACHE_TTL_S
assert IDEMPOTENCY_LEASE_S < IDEMPOTENCY_KEY_TTL_S
assert 0 < IDEMPOTENCY_BATCH_SIZE_MAX <= 10_000
assert OUTBOX_SWEEP_ROWS_MAX >= SAGA_BATCH_SIZE_MAX
assert OUTBOX_STALE_AFTER_S > SAGA_BATCH_WINDOW_MS_MAX / 1000
assert STATEMENT_TIMEOUT_MS > LOCK_TIMEOUT_MS
assert REPORT_STATEMENT_TIMEOUT_MS >= STATEMENT_TIMEOUT_MS
assert CONNECT_TIMEOUT_S < POOL_ACQUIRE_TIMEOUT_S
assert max(POSTING_BATCH_SIZE_MAX, IDEMPOTENCY_BATCH_SIZE_MAX) <= BATCH_QUEUE_SIZE_MAX
assert 0 <= RATE_LIMIT_PER_S_DEFAULT <= RATE_LIMIT_PER_S_MAX
assert 1 <= RATE_LIMIT_BURST_DEFAULT <= RATE_LIMIT_BURST_MAX
assert RATE_LIMIT_KEYS_MAX >= 1
assert 1 <= SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT <= SAGA_IN_FLIGHT_PER_SOURCE_MAX
assert 0 < SAGA_IN_FLIGHT_WAIT_S <= SAGA_SYNC_WAIT_S_MAX
assert ACTIVITY_RETRY_INITIAL_S < ACTIVITY_RETRY_INTERVAL_MAX_S
assert ACTIVITY_RETRY_INITIAL_S <= LOCAL_RETRY_THRESHOLD_S < ACTIVITY_RETRY_INTERVAL_MAX_S
assert SWEEP_HEARTBEAT_TIMEOUT_S < SWEEP_START_TO_CLOSE_S
# The sweep skips a shard whose connection does not come in time, before its heartbeat lapses.
assert POOL_ACQUIRE_TIMEOUT_S < SWEEP_HEARTBEAT_TIMEOUT_S
assert 12 * OUTBOX_SWEEPS_PER_RUN_MAX <= 51_200 // 10, "a sweeper run stays far below the cap"
assert WORKER_GRACEFUL_SHUTDOWN_S >= ACTIVITY_START_TO_CLOSE_S
# Kubernetes must not kill a worker while its activities are still allowed to finish.
assert WORKER_GRACEFUL_SHUTDOWN_S + WORKER_SHUTDOWN_MARGIN_S <= WORKER_TERMINATION_GRACE_PERIOD_S
assert OUTBOX_STALE_AFTER_S > SAGA_IN_FLIGHT_WAIT_S + SAGA_BATCH_WINDOW_MS_MAX / 1000

SHARD_PROBE_INTERVAL_S: Final = 5.0
SHARD_PROBE_TIMEOUT_S: Final = 2.0
"""How often, and how patiently, an API process asks each shard whether it answers: for
`/readyz` and the `ledgerflow_shard_up` metric, never to refuse requests."""
assert SHARD_PROBE_TIMEOUT_S < SHARD_PROBE_INTERVAL_S

IDEMPOTENCY_PURGE_INTERVAL_S: Final = 600
"""How often each API process deletes expired idempotency records and events."""
assert IDEMPOTENCY_PURGE_INTERVAL_S < IDEMPOTENCY_KEY_TTL_S

EVENT_RETENTION_S: Final = 30 * 24 * 3600
"""Events are kept 30 days, then deleted: the feed tells what changed, while transfers,
entries and balances, the record itself, are kept for good."""
EVENT_PURGE_BATCH_MAX: Final = 10_000
"""Events one delete statement removes, so that no purge holds a long transaction."""
assert IDEMPOTENCY_PURGE_INTERVAL_S < EVENT_RETENTION_S


HOLD_EXPIRES_IN_S_MAX: Final = 604_800
"""A hold lives at most 7 days (and by default that long)."""
FUNDS_TIMERS_POLL_S: Final = 10.0
"""Each shard's funds timers look for due holds and credits at least this often, so a
hold's money is back in `available`, and a delayed credit available, within this (plus one
pass) of its deadline."""
FUNDS_TIMERS_BATCH_MAX: Final = POSTING_BATCH_SIZE_MAX
"""Holds (and credits) one pass of the funds timers settles in one transaction."""
FUNDS_TIMERS_PASSES_PER_RUN: Final = 200
"""Passes before the funds timers continue as new, bounding their history."""
AVAILABLE_ON_DAYS_MAX: Final = 90
"""A delayed credit becomes available at most this many days ahead."""

FUNDS_TIMERS_PASS_TIMEOUT_S: Final = 10.0
"""How long one pass of the funds timers may run before Temporal gives it to another worker:
a pass is a few short transactions, and a worker killed mid-pass must not hold the shard's
expiries back for longer than this."""
WORKER_STICKY_TIMEOUT_S: Final = 3.0
"""How long a workflow task waits for the worker that ran the workflow last (its cache)
before any worker takes it: a worker that died hands its workflows on after this."""

REVIEW_TIMEOUT_S_DEFAULT: Final = 86_400.0
"""A transfer waiting for review is rejected after this long without a decision
(`LEDGERFLOW_REVIEW_TIMEOUT_S`)."""
REVIEW_TIMEOUT_S_MAX: Final = 30 * 86_400.0
REVIEWS_WAITING_MAX_DEFAULT: Final = 10_000
"""The most transfers one tenant may have waiting for review across the cluster
(`LEDGERFLOW_REVIEWS_WAITING_MAX`): each waits in a Temporal workflow with a long timer on
the server every tenant's sagas share. Each shard admits an equal share of it."""
REVIEWS_WAITING_MAX_MAX: Final = 1_000_000
REVIEW_START_GRACE_S: Final = 5.0
"""The API starts a review's workflow right after holding the transfer; the funds timers
start one the API has not recorded after this long (it crashed in between)."""
REVIEWS_STARTED_PER_PASS_MAX: Final = 100
RAISE_SETTLE_GRACE_S: Final = 30.0
"""An increment across shards reserves its raise on the payee's shard, then applies on the
payer's within the request; the funds timers settle a reservation still open after this
long (its request crashed), deciding the increment's key on the payer's shard. A request
slower than this is then refused, and moved nothing."""
RAISES_SETTLED_PER_PASS_MAX: Final = 100
