"""What the app holds for its lifetime, built in the lifespan and shared by requests."""

from dataclasses import dataclass

from api.account_service import AccountService
from api.auth import Authenticator
from api.batch_service import BatchService
from api.event_service import EventService
from api.maintenance import ShardHealth
from api.rate_limit import RateLimiter
from api.transfer_changes import TransferChanges
from api.transfer_service import TransferService
from shards.cluster import ShardCluster
from shards.group_commit import GroupCommitter
from shards.idempotency import IdempotencyStore


@dataclass(slots=True)
class AppState:
    """The process-wide services."""

    cluster: ShardCluster
    health: ShardHealth
    committer: GroupCommitter
    idempotency: IdempotencyStore
    authenticator: Authenticator
    rate_limiter: RateLimiter
    accounts: AccountService
    events: EventService
    transfers: TransferService
    transfer_changes: TransferChanges
    batches: BatchService
