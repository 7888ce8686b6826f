"""Time travel over REST: replay a session, fetch any past epoch as a frame, fork from it.

Replays live in the web process (app.state.replays, one per session, bounded by max_sessions,
expired after session_idle_seconds unused); replaying runs in the threadpool.
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ManagerDep, SessionCopyDep, SessionDep, app_store
from app.api.routes.instruments import unprocessable
from app.api.schemas import SessionPublic
from app.instruments.store import ExpiringStore, StoreFull
from app.instruments.timetravel import Replay, replay
from app.sessions.config import Integer

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    404: {"description": "No such session, or no replay of it yet"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "max_sessions replays or sessions exist"},
}

router = APIRouter(prefix="/api/sessions", tags=["time travel"], responses=ERRORS)


async def replays_of(request: Request) -> ExpiringStore[Replay]:
    """The app's replay store, made on first use (on the event loop, so only once)."""
    store: ExpiringStore[Replay] = app_store(request, "replays", "replay")
    return store


def _replay(store: ExpiringStore[Replay], session_id: str) -> Replay:
    try:
        return store.get(session_id)
    except KeyError:
        raise HTTPException(
            404, f"no replay of session {session_id!r}: POST /api/sessions/{session_id}/"
            "timetravel first"
        ) from None


@router.post("/{session_id}/timetravel", status_code=status.HTTP_201_CREATED)
async def create_replay(session: SessionCopyDep, request: Request) -> dict[str, Any]:
    """Replay the session up to its current epoch, keeping checkpoints within the bound."""
    store = await replays_of(request)
    try:
        previous: Replay | None = store.get(session.id)
    except KeyError:
        previous = None
    try:
        replayed = await run_in_threadpool(replay, session, previous)
    except ValueError as error:
        raise unprocessable(error, "path", "session_id") from None
    try:
        store.add(replayed, key=session.id)
    except StoreFull as error:
        raise HTTPException(429, str(error)) from None
    return replayed.summary()


@router.get("/{session_id}/timetravel")
async def read_replay(handle: SessionDep, request: Request) -> dict[str, Any]:
    """The stored epochs of the session's replay (the slider's stops)."""
    return _replay(await replays_of(request), handle.session_id).summary()


@router.get(
    "/{session_id}/timetravel/{epoch}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "A binary frame (docs/protocol.md layout)"}},
)
async def read_replay_frame(handle: SessionDep, epoch: int, request: Request) -> Response:
    """The network at the stored epoch nearest to `epoch`, as one binary frame."""
    if epoch < 0:
        raise HTTPException(
            422, [{"loc": ["path", "epoch"], "msg": f"epoch = {epoch} must be >= 0",
                   "type": "value_error"}]
        )
    stored = _replay(await replays_of(request), handle.session_id)
    frame = await run_in_threadpool(stored.frame_at, epoch)
    return Response(frame, media_type="application/octet-stream")


class ForkCreate(BaseModel):
    """Where to fork from and what to change (fields that keep the weights' shapes)."""

    model_config = ConfigDict(extra="forbid")

    epoch: Integer = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)


@router.post("/{session_id}/timetravel/fork", status_code=status.HTTP_201_CREATED)
async def create_fork(
    handle: SessionDep, body: ForkCreate, request: Request, manager: ManagerDep
) -> SessionPublic:
    """A new live session from the weights of a past epoch, with changed settings."""
    stored = _replay(await replays_of(request), handle.session_id)
    try:
        export = await run_in_threadpool(stored.fork_export, body.epoch, body.config)
    except ValueError as error:
        raise unprocessable(error, "body", "config") from None
    return SessionPublic.model_validate(await manager.create("import", export))
