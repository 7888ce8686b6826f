"""GET /health: liveness and counts, answered by the event loop alone."""

import json

from fastapi import APIRouter, Request, Response

from app.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def read_health(request: Request) -> Response:
    """Liveness probe with the number of sessions and live workers."""
    # No dependency and no model to validate: a probe's answer costs the loop as little as it
    # can (bench/request_cost.py).
    body = json.dumps({"status": "ok", **request.app.state.manager.stats()},
                      separators=(",", ":"))
    return Response(body, media_type="application/json")
