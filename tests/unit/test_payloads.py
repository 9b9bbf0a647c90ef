"""The settlement's payload converter: the SDK's JSON, with type adapters kept per process."""

import json

from temporalio.converter import DataConverter

from workflows.payloads import DATA_CONVERTER, _type_adapter
from workflows.settlement.inputs import SettlementBatch, SettlementTransfer


def _batch() -> SettlementBatch:
    return SettlementBatch(
        batch_id="settle-0-test",
        source_shard=0,
        currency="USD",
        transfers=[
            SettlementTransfer(f"tr_{i}", "tenant", "acct_a", "acct_b", 100 + i, 1)
            for i in range(3)
        ],
    )


def test_payloads_are_the_sdk_default_json_both_ways() -> None:
    batch = _batch()
    ours = DATA_CONVERTER.payload_converter.to_payloads([batch])
    default = DataConverter.default.payload_converter.to_payloads([batch])
    assert [json.loads(p.data) for p in ours] == [json.loads(p.data) for p in default]
    assert ours[0].metadata["encoding"] == b"json/plain"
    for payloads in (ours, default):
        [decoded] = DATA_CONVERTER.payload_converter.from_payloads(payloads, [SettlementBatch])
        assert decoded == batch


def test_every_new_converter_reuses_the_type_adapters_of_the_process() -> None:
    payloads = DATA_CONVERTER.payload_converter.to_payloads([_batch()])
    # The worker builds a converter per workflow, as here.
    DATA_CONVERTER.payload_converter_class().from_payloads(payloads, [SettlementBatch])
    before = _type_adapter.cache_info()
    for _ in range(3):
        converter = DATA_CONVERTER.payload_converter_class()
        [decoded] = converter.from_payloads(payloads, [SettlementBatch])
        assert decoded == _batch()
    after = _type_adapter.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 3
