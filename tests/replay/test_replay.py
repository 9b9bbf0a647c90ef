"""Recorded workflow histories replay against today's workflow code.

A change that makes a workflow take different steps for the same history (a new activity,
a reordered call, a removed upsert) fails here with a non-determinism error; one that takes
the same steps but reads their results otherwise (credits one destination's refusals as
another's) fails the comparison of the replayed result with the recorded one. Make such a
change with `workflow.patched` instead. The histories, and what each covers, are listed in
`record_histories.py`; this one command records them all again (commit the new files):

    python -m pytest tests/replay/record_histories.py
"""

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.payloads import DATA_CONVERTER
from workflows.worker import WORKFLOW_RUNNER, WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"

RECORDED = frozenset(
    {
        "settle-posted",
        "settle-released",
        "settle-several-destinations",
        "settle-credit-retried",
        "settle-refused-as-a-whole",
        "settle-hold-and-deferred",
        "sweep-started",
        "sweep-forever",
        "atomic-posted",
        "atomic-released",
    }
)
"""What `record_histories.py` records: each kind of run the workflows know."""


class _ResultInbound(WorkflowInboundInterceptor):
    results: ClassVar[dict[str, Any]] = {}

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        result = await super().execute_workflow(input)
        self.results[workflow.info().workflow_id] = result
        return result


class _KeepResults(Interceptor):
    """Keeps what each replayed workflow returned (the workflows run outside the sandbox,
    so a class attribute is shared with the test)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _ResultInbound


def _recorded_result(history: WorkflowHistory) -> Any | None:
    """The JSON the recorded run completed with; None for a run that continued as new."""
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            (payload,) = event.workflow_execution_completed_event_attributes.result.payloads
            return json.loads(payload.data)
    return None


@pytest.mark.parametrize(
    "converter", [DATA_CONVERTER, DataConverter.default], ids=["settlement", "sdk-default"]
)
async def test_recorded_histories_replay(converter: DataConverter) -> None:
    """Every recorded saga, atomic batch, sweep and sweeper run replays without a
    non-determinism error and returns what it returned when recorded, with the workers'
    runner (outside the sandbox), with the settlement's payload converter and with the SDK's
    default: both read the same JSON, so histories written before and after the settlement
    changed converters replay alike."""
    files = sorted(HISTORIES.glob("*.json"))
    assert {f.stem for f in files} == RECORDED, files
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=converter,
        workflow_runner=WORKFLOW_RUNNER,
        interceptors=[_KeepResults()],
    )
    compared = 0
    for file in files:
        history = WorkflowHistory.from_json(file.stem, file.read_text())
        _ResultInbound.results.clear()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{file.name}: {result.replay_failure}"
        recorded = _recorded_result(history)
        if recorded is None:
            continue
        (replayed,) = _ResultInbound.results.values()
        (payload,) = await converter.encode([replayed])
        assert json.loads(payload.data) == recorded, file.name
        compared += 1
    assert compared == len(RECORDED) - 1, "every run but the sweeper's completes"
