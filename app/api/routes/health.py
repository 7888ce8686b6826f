"""GET /health: liveness and counts, answered by the event loop alone."""

from fastapi import APIRouter

from app.api.deps import ManagerDep
from app.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health")
async def read_health(manager: ManagerDep) -> Health:
    """Liveness probe with the number of sessions and live workers."""
    return Health(status="ok", **manager.stats())
