"""How the settlement's workflow and activity payloads become JSON, and back.

Every client that starts, runs or reads settlement workflows uses `DATA_CONVERTER`: the
SDK's pydantic converter (`temporalio.contrib.pydantic`) with one change. It writes the
same `json/plain` payloads as the SDK's default converter, so a history recorded with
either replays with either (tests/replay checks both), but it turns a batch of
`SAGA_BATCH_SIZE_MAX` transfers into objects about five times faster: the default
converter walks each dataclass's type hints for every value, and every saga step carries
the batch's transfers once each way.

The change: the worker builds a new payload converter for every workflow it runs, and the
SDK's pydantic converter keeps its pydantic `TypeAdapter`s per converter, so each saga
built the adapters of its input and of each step's result anew (schema generation, about
5% of the worker's time). `SettlementPayloadConverter` keeps them once per process.
"""

import functools
from typing import Any, Final

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


@functools.lru_cache(maxsize=256)
def _type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class _ProcessCachedJSONConverter(PydanticJSONPlainPayloadConverter):
    """`json/plain` through pydantic, with the type adapters cached for the process."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        """Validate the payload's JSON as `type_hint` (anything, without one)."""
        try:
            adapter = _type_adapter(Any if type_hint is None else type_hint)
        except TypeError:
            # An unhashable hint cannot be cached; the SDK's converter handles it.
            return super().from_payload(payload, type_hint)
        return adapter.validate_json(payload.data)


class SettlementPayloadConverter(CompositePayloadConverter):
    """The SDK's default encodings, with `json/plain` done by pydantic."""

    def __init__(self) -> None:
        json_converter = _ProcessCachedJSONConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER: Final[DataConverter] = DataConverter(
    payload_converter_class=SettlementPayloadConverter
)


def with_settlement_payloads(client: Client) -> Client:
    """`client`, or a client on the same connection that converts payloads with
    `DATA_CONVERTER` (a worker converts with its client's converter)."""
    if client.data_converter is DATA_CONVERTER:
        return client
    config = client.config()
    config["data_converter"] = DATA_CONVERTER
    return Client(**config)
