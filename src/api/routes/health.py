"""Liveness, readiness and metrics: no API key needed."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import StateDep
from api.models import ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={200: {"model": ReadyOut, "description": "this process serves requests"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """This process can serve: its pools and clients are open. A shard that is down does
    not make it unready (requests for that shard's accounts get 503 `shard_unavailable`,
    the others are served); `shards_down` names the shards that missed their last probe."""
    return JSONResponse(
        {"status": "ok", "shards": len(state.cluster.shards), "shards_down": state.health.down}
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus exposition format."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
