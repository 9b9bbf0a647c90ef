"""`ledgerflow worker` as deploy/k8s runs it: against given shards and Temporal, serving
the SDK's Prometheus metrics and the Kubernetes probes, stopping cleanly on SIGTERM."""

import asyncio
import json
import os
import signal
import sys

import httpx
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledgerflow.devstack import free_port
from workflows.sweep.start import sweeper_workflow_id


async def test_worker_serves_sdk_metrics_and_probes_and_stops_on_sigterm(
    shard_dsns: list[str], temporal_address: str, temporal_env: WorkflowEnvironment
) -> None:
    """With LEDGERFLOW_WORKER_METRICS_ADDRESS set, the worker's Temporal SDK metrics
    (pollers, task slots, request latencies) are scraped from it; with
    LEDGERFLOW_WORKER_HEALTH_ADDRESS, /readyz and /healthz answer 200 once it polls; it
    starts the queue's sweeper; SIGTERM exits 0."""
    task_queue = f"worker-command-{ULID()}"
    metrics_port = free_port()
    health_port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ledgerflow",
        "worker",
        env={
            **os.environ,
            "LEDGERFLOW_SHARD_DSNS": json.dumps(shard_dsns),
            "LEDGERFLOW_TEMPORAL_ADDRESS": temporal_address,
            "LEDGERFLOW_TASK_QUEUE": task_queue,
            "LEDGERFLOW_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "LEDGERFLOW_WORKER_HEALTH_ADDRESS": f"127.0.0.1:{health_port}",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        text = ""
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    response = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
                    text = response.text
                    if "temporal_worker_task_slots_available" in text:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert "temporal_worker_task_slots_available" in text, text[:2000]
            assert f'task_queue="{task_queue}"' in text
            probes = f"http://127.0.0.1:{health_port}"
            assert (await client.get(f"{probes}/readyz")).status_code == 200
            alive = await client.get(f"{probes}/healthz")
            assert (alive.status_code, alive.text) == (200, "alive\n")
            assert (await client.get(f"{probes}/metrics")).status_code == 404
        sweeper = temporal_env.client.get_workflow_handle(sweeper_workflow_id(task_queue))
        assert (await sweeper.describe()).status is WorkflowExecutionStatus.RUNNING
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        await temporal_env.client.get_workflow_handle(sweeper_workflow_id(task_queue)).terminate()
    assert process.returncode == 0, output.decode()[-3000:]
