"""How the settlement's workflow and activity payloads become JSON, and back.

Every client that starts, runs or reads settlement workflows uses `DATA_CONVERTER`, the
SDK's pydantic converter (`temporalio.contrib.pydantic`). It writes the same `json/plain`
payloads as the SDK's default converter, so a history recorded with either replays with
either (tests/replay checks both), but it turns a batch of `SAGA_BATCH_SIZE_MAX` transfers
into objects about five times faster: the default converter walks each dataclass's type
hints for every value, and every saga step carries the batch's transfers once each way.
"""

from typing import Final

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

DATA_CONVERTER: Final[DataConverter] = pydantic_data_converter


def with_settlement_payloads(client: Client) -> Client:
    """`client`, or a client on the same connection that converts payloads with
    `DATA_CONVERTER` (a worker converts with its client's converter)."""
    if client.data_converter is DATA_CONVERTER:
        return client
    config = client.config()
    config["data_converter"] = DATA_CONVERTER
    return Client(**config)
