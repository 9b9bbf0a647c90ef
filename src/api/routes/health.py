"""Liveness, readiness and metrics: no API key needed."""

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import StateDep
from api.models import ReadyOut

router = APIRouter(tags=["operations"])

_READY_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"model": ReadyOut, "description": "every shard answers"},
        503: {"model": ReadyOut, "description": "the shards named in `shards_down` do not"},
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    """Every shard answers; 503 naming the ones that do not."""

    async def ping(index: int) -> bool:
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                async with state.cluster.shards[index].connection() as conn:
                    await conn.fetchval("select 1")
        except (OSError, TimeoutError, Exception):
            return False
        return True

    results = await asyncio.gather(*(ping(s.index) for s in state.cluster.shards))
    down = [i for i, ok in enumerate(results) if not ok]
    if down:
        return JSONResponse({"status": "unavailable", "shards_down": down}, status_code=503)
    return JSONResponse({"status": "ok", "shards": len(results)})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus exposition format."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
