"""Recorded workflow histories replay against today's workflow code.

A change that makes a workflow take different steps for the same history (a new activity,
a reordered call, a removed upsert) fails here; make it with `workflow.patched` instead,
then record new histories with `python -m pytest tests/replay/record_histories.py`.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from workflows.payloads import DATA_CONVERTER
from workflows.settlement.workflow import SettleCrossShardBatch
from workflows.sweep.workflow import SweepSagaOutbox, SweepSagaOutboxForever

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize(
    "converter", [DATA_CONVERTER, DataConverter.default], ids=["settlement", "sdk-default"]
)
async def test_recorded_histories_replay(converter: DataConverter) -> None:
    """Every recorded saga, sweep and sweeper run replays without a non-determinism error,
    with the settlement's payload converter and with the SDK's default: both read the same
    JSON, so histories written before and after the settlement changed converters replay
    alike."""
    files = sorted(HISTORIES.glob("*.json"))
    assert {f.stem.split("-")[0] for f in files} >= {"settle", "sweep"}, files
    replayer = Replayer(
        workflows=[SettleCrossShardBatch, SweepSagaOutbox, SweepSagaOutboxForever],
        data_converter=converter,
    )
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{file.name}: {result.replay_failure}"
