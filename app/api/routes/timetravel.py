"""Time travel over REST: open a session's recorded past, fetch any kept epoch as a frame, fork.

Every live session records full-state checkpoints as it trains (app/instruments/checkpoints.py,
issue 10), so nothing is replayed: the view (still called a replay) lives in the worker that
holds its session (one per session, dropped with it), bounded by max_replays_per_owner and the
job memory budgets, and opening it is a job that ends in its first turn (201 at once). Opening
and forking need the session's owner token; the summary and the frames are open to anyone with
the session id.
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import CallerDep, ManagerDep, OwnedSessionDep, SessionDep
from app.api.owners import bearer_token
from app.api.routes.jobs import ACCEPTED, answer
from app.sessions.config import Integer

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    401: {"description": "No owner token"},
    403: {"description": "Another owner's session"},
    404: {"description": "No such session, or no replay of it yet"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "A replay, job, session or memory limit is reached (Retry-After; the "
          "detail names the setting)"},
}

router = APIRouter(prefix="/api/sessions", tags=["time travel"], responses=ERRORS)


@router.post(
    "/{session_id}/timetravel", status_code=status.HTTP_201_CREATED, responses=ACCEPTED,
    response_model=dict[str, Any],
)
async def create_replay(handle: OwnedSessionDep, manager: ManagerDep) -> Response:
    """Open the session's time travel: the epochs it recorded (thinned within the bound) and
    its live epoch. A job kept for its budgets; it ends at once, so the answer is 201.
    """
    board = manager.jobs
    record = await board.replay(handle.session_id, handle.owner)
    return await answer(board, record, status.HTTP_201_CREATED)


@router.get("/{session_id}/timetravel", response_model=dict[str, Any])
async def read_replay(handle: SessionDep, manager: ManagerDep) -> Response:
    """The stored epochs of the session's replay (the slider's stops); JSON the worker encoded."""
    summary: bytes = await manager.call(handle.session_id, "replay_summary")
    return Response(summary, media_type="application/json")


@router.get(
    "/{session_id}/timetravel/{epoch:int}",  # :int, so GET .../fork is a 405, not a 422
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "A binary frame (docs/protocol.md layout)"}},
)
async def read_replay_frame(handle: SessionDep, epoch: int, manager: ManagerDep) -> Response:
    """The network at the stored epoch nearest to `epoch`, as one binary frame."""
    if epoch < 0:
        raise HTTPException(
            422, [{"loc": ["path", "epoch"], "msg": f"epoch = {epoch} must be >= 0",
                   "type": "value_error"}]
        )
    frame = await manager.call(handle.session_id, "replay_frame", epoch)
    return Response(frame, media_type="application/octet-stream")


class ForkCreate(BaseModel):
    """Where to fork from and what to change (fields that keep the weights' shapes)."""

    model_config = ConfigDict(extra="forbid")

    epoch: Integer = Field(ge=0)
    config: dict[str, Any] = Field(default_factory=dict)


@router.post("/{session_id}/timetravel/fork", status_code=status.HTTP_201_CREATED)
async def create_fork(
    handle: OwnedSessionDep, body: ForkCreate, request: Request, manager: ManagerDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """A new live session (the same owner's) from the full state of a kept epoch (weights,
    optimizer, RNG and early-stopping state), with changed settings; the answer is a
    SessionPublic plus `owner_token`."""
    export = await manager.call(
        handle.session_id, "replay_fork", {"epoch": body.epoch, "config": body.config}
    )
    public = await manager.create("import", export, owner=handle.owner, address=caller.address)
    return {**public, "owner_token": bearer_token(request.headers.get("authorization"))}
