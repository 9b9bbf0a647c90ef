"""Every limit of the system, in one place, with the relations between them asserted.

Names carry their unit last (`_s`, `_ms`, `_bytes`, `_max`).
"""

from typing import Final

BIGINT_MAX: Final = 2**63 - 1
"""Largest value a PostgreSQL bigint holds; every amount and every sum stays within it."""

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

SAGA_BATCH_WINDOW_MS_MAX: Final = 1000
SAGA_SYNC_WAIT_S_MAX: Final = 30.0

POOL_SIZE_MAX: Final = 64
STATEMENT_TIMEOUT_MS: Final = 10_000
LOCK_TIMEOUT_MS: Final = 5_000

ACTIVITY_START_TO_CLOSE_S: Final = 30
ACTIVITY_RETRY_INTERVAL_MAX_S: Final = 30
CREDIT_ATTEMPTS_MAX: Final = 0
"""0 means unlimited: once reserved, a saga must finish; business refusals are non-retryable."""

OUTBOX_SWEEP_INTERVAL_S: Final = 10
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
"""The sweep runs again on the next tick of its schedule, so one run retries briefly."""

STUCK_TRANSFERS_LIMIT_MAX: Final = 1000

assert 0 < POSTING_BATCH_SIZE_MAX <= 10_000
assert 0 < SAGA_BATCH_SIZE_MAX <= POSTING_BATCH_SIZE_MAX
# The ids as a JSON list: brackets, and per id two quotes and a comma.
assert 2 + SAGA_BATCH_SIZE_MAX * (TRANSFER_ID_LENGTH + 3) <= SEARCH_ATTRIBUTE_VALUE_BYTES_MAX
assert PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX
assert IDEMPOTENCY_LEASE_S < IDEMPOTENCY_KEY_TTL_S
assert 0 < IDEMPOTENCY_BATCH_SIZE_MAX <= 10_000
assert OUTBOX_SWEEP_ROWS_MAX >= SAGA_BATCH_SIZE_MAX
assert OUTBOX_STALE_AFTER_S > SAGA_BATCH_WINDOW_MS_MAX / 1000
assert STATEMENT_TIMEOUT_MS > LOCK_TIMEOUT_MS
assert 1 <= SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT <= SAGA_IN_FLIGHT_PER_SOURCE_MAX
assert 0 < SAGA_IN_FLIGHT_WAIT_S <= SAGA_SYNC_WAIT_S_MAX
assert ACTIVITY_RETRY_INITIAL_S < ACTIVITY_RETRY_INTERVAL_MAX_S
assert ACTIVITY_RETRY_INITIAL_S <= LOCAL_RETRY_THRESHOLD_S < ACTIVITY_RETRY_INTERVAL_MAX_S
assert SWEEP_HEARTBEAT_TIMEOUT_S < SWEEP_START_TO_CLOSE_S
assert OUTBOX_STALE_AFTER_S > SAGA_IN_FLIGHT_WAIT_S + SAGA_BATCH_WINDOW_MS_MAX / 1000

IDEMPOTENCY_PURGE_INTERVAL_S: Final = 600
assert IDEMPOTENCY_PURGE_INTERVAL_S < IDEMPOTENCY_KEY_TTL_S
