"""GET /metrics: the app's Prometheus metrics (app/ops/metrics.py, docs/operations.md)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.ops.metrics import Metrics

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def read_metrics(request: Request) -> Response:
    """Sessions, subscribers, frames, workers, jobs, request latency and memory, for Prometheus.

    Computed from the live state when scraped (a few /proc reads: cheap, on the event loop)."""
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
