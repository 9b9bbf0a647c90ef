"""`ledgerflow worker` as deploy/k8s runs it: against given shards and Temporal, serving
the SDK's Prometheus metrics, stopping cleanly on SIGTERM."""

import asyncio
import json
import os
import signal
import sys

import httpx
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledgerflow.devstack import free_port
from workflows.worker import sweep_schedule_id


async def test_worker_serves_sdk_metrics_and_stops_on_sigterm(
    shard_dsns: list[str], temporal_address: str, temporal_env: WorkflowEnvironment
) -> None:
    """With LEDGERFLOW_WORKER_METRICS_ADDRESS set, the worker's Temporal SDK metrics
    (pollers, task slots, request latencies) are scraped from it; SIGTERM exits 0."""
    task_queue = f"worker-command-{ULID()}"
    metrics_port = free_port()
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
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        await temporal_env.client.get_schedule_handle(sweep_schedule_id(task_queue)).delete()
    assert process.returncode == 0, output.decode()[-3000:]
