"""Custom search attributes of the settlement sagas, and their registration.

Every settlement workflow carries these, set when it starts and upserted as it moves, so an
operator finds the saga of any transfer, and every stuck one, with one filter in the
Temporal UI (or `temporal workflow list --query ...`):

    LedgerflowTransferIds = 'tr_01J...'
        the saga that settles (or settled) one transfer;
    LedgerflowStatus = 'running' AND StartTime < '2025-01-01T12:00:00Z'
        every saga still running that started before a moment (now minus N minutes);
    LedgerflowStatus = 'running' AND LedgerflowStep = 'post'
        sagas that credited and are retrying the post (a source shard is down);
    LedgerflowSourceShard = '2' AND LedgerflowDestinationShards = '0'
        sagas moving money from shard 2 to shard 0 (a list matches when it holds the value).

The dev server registers them at start (`--search-attribute`); a real cluster needs them
registered once per namespace, with `register_search_attributes` (idempotent).
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

from ledger.limits import TEMPORAL_RPC_TIMEOUT_S

STATUS: Final = SearchAttributeKey.for_keyword("LedgerflowStatus")
"""`running` while the saga works, `completed` once every transfer is posted or released."""
STEP: Final = SearchAttributeKey.for_keyword("LedgerflowStep")
"""`credit`, then `post`, `release` or `post_and_release`, then `done`."""
# Shard numbers are identifiers, filtered by equality, so they are keywords ('2'). The dev
# server's SQLite visibility store holds at most three Int attributes, and those go to the
# quantities an operator compares by range: amount and count. A batch leaves one source
# shard for any others, so the destinations are a list.
SOURCE_SHARD: Final = SearchAttributeKey.for_keyword("LedgerflowSourceShard")
DESTINATION_SHARDS: Final = SearchAttributeKey.for_keyword_list("LedgerflowDestinationShards")
CURRENCY: Final = SearchAttributeKey.for_keyword("LedgerflowCurrency")
AMOUNT: Final = SearchAttributeKey.for_int("LedgerflowAmount")
"""The batch's total in minor units of its currency."""
TRANSFER_COUNT: Final = SearchAttributeKey.for_int("LedgerflowTransferCount")
TRANSFER_IDS: Final = SearchAttributeKey.for_keyword_list("LedgerflowTransferIds")

ALL_KEYS: Final[Sequence[SearchAttributeKey[Any]]] = (
    STATUS,
    STEP,
    SOURCE_SHARD,
    DESTINATION_SHARDS,
    CURRENCY,
    AMOUNT,
    TRANSFER_COUNT,
    TRANSFER_IDS,
)

_TYPE_NAMES: Final[Mapping[SearchAttributeIndexedValueType, str]] = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}

SEARCH_ATTRIBUTE_TYPES: Final[Mapping[str, str]] = {
    key.name: _TYPE_NAMES[key.indexed_value_type] for key in ALL_KEYS
}
"""Name -> type name, as `temporal server start-dev --search-attribute NAME=TYPE` takes them."""


class SearchAttributeConflictError(RuntimeError):
    """A search attribute is registered in the namespace with another type."""


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Ledgerflow's attributes the namespace lacks (idempotent); returns the names
    added.

    Run once per namespace on a real cluster (the dev server gets them at start).

    Raises:
        SearchAttributeConflictError: a name exists with another type; fix it by hand.
        temporalio.service.RPCError: the cluster refused (for example, no operator rights).
    """
    wanted = {key.name: int(key.indexed_value_type) for key in ALL_KEYS}
    return await register_missing(client, namespace, wanted)


async def register_missing(client: Client, namespace: str, wanted: Mapping[str, int]) -> list[str]:
    """Add the attributes of `wanted` (name -> `IndexedValueType`) the namespace lacks;
    returns the names added.

    Raises:
        SearchAttributeConflictError: a name exists with another type.
        temporalio.service.RPCError: the cluster refused or is unreachable.
    """
    timeout = timedelta(seconds=TEMPORAL_RPC_TIMEOUT_S)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace), timeout=timeout
    )
    existing = dict(listed.custom_attributes)
    missing: dict[str, Any] = {}
    for name, indexed_type in wanted.items():
        if name not in existing:
            missing[name] = indexed_type
        elif existing[name] != indexed_type:
            actual, expected = (
                IndexedValueType.Name(IndexedValueType.ValueType(t))
                for t in (existing[name], indexed_type)
            )
            raise SearchAttributeConflictError(
                f"search attribute {name} is registered as {actual}, not {expected}"
            )
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing),
            timeout=timeout,
        )
    return sorted(missing)
