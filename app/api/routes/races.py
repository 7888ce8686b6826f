"""Optimizer races over REST: start one, step it, read its curves and decision grids, delete it.

Races live in the workers (app/sessions/jobs.py keeps the race -> worker map), bounded by
max_sessions in all, max_races_per_owner and the job memory budgets, and forgotten after
session_idle_seconds unused. A step is a job trained in the worker's slices like a session: the
route waits job_wait_seconds, then answers 202 with the job. Whoever created the race (its
owner token) may step and delete it; anyone with its id may read it.
"""

import json
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import CallerDep, CreatorDep, ManagerDep, owners_of, require_owner
from app.api.raw_bodies import raw_body
from app.api.routes.jobs import ACCEPTED, answer
from app.api.routes.sessions import validated_in_worker
from app.instruments.race import RaceCreate
from app.sessions.bodies import RAW
from app.sessions.config import Boolean, Integer

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    401: {"description": "No owner token, or an unknown one"},
    403: {"description": "Another owner's race"},
    404: {"description": "No such race"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "A race, job or memory limit is reached (Retry-After; the detail "
          "names the setting)"},
    503: {"description": "No worker is running"},
}

router = APIRouter(prefix="/api/races", tags=["races"], responses=ERRORS)


class RaceStep(BaseModel):
    """Train every racer `epochs` more epochs; `grids` false skips the decision grids."""

    model_config = ConfigDict(extra="forbid")

    epochs: Integer = Field(default=10, ge=1)
    grids: Boolean = True


class RacePublic(BaseModel):
    """Curves (all epochs, or those of the last step) and grids of every racer."""

    id: str
    epoch: int
    first_epoch: int
    racers: list[dict[str, Any]]
    grids: list[dict[str, Any]] | None


class RaceCreated(RacePublic):
    """A new race, and the owner token that may step and delete it."""

    owner_token: str


def _json(body: bytes, code: int = 200) -> Response:
    return Response(body, status_code=code, media_type="application/json")


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RaceCreated,
    openapi_extra=raw_body("/api/races", "post", RaceCreate),
)
async def create_race(request: Request, manager: ManagerDep, creator: CreatorDep) -> Response:
    """Racers built from one config, all with racer 0's initial weights (epoch 0).

    The body (RaceCreate; its config may carry thousands of points) is parsed and validated
    in the worker that will hold the race, not on the event loop.
    """
    _, public = await validated_in_worker(
        manager.jobs.create_race(creator.token_hash, {RAW: await request.body()})
    )
    owners_of(request).add(creator.token_hash)
    token = json.dumps(creator.token)
    return _json(public[:-1] + f', "owner_token": {token}}}'.encode(), 201)


@router.get("/{race_id}", response_model=RacePublic)
async def read_race(race_id: str, manager: ManagerDep) -> Response:
    """Every epoch's curves and the current grids."""
    return _json(await manager.jobs.read_race(race_id))


@router.post("/{race_id}/step", response_model=RacePublic, responses=ACCEPTED)
async def update_race(
    race_id: str, body: RaceStep, manager: ManagerDep, caller: CallerDep
) -> Response:
    """Train `epochs` more; the answer has the new epochs' curves only, and fresh grids.

    A job: after job_wait_seconds the answer is 202 with the job (GET /api/jobs/{id}/result).
    """
    board = manager.jobs
    owner = (await board.find_race(race_id)).owner
    require_owner(caller, owner, f"race {race_id!r}")
    record = await board.step_race(race_id, owner, body.epochs, body.grids)
    return await answer(board, record)


@router.delete("/{race_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_race(race_id: str, manager: ManagerDep, caller: CallerDep) -> Response:
    """Forget the race (a step of it that runs is cancelled)."""
    require_owner(caller, (await manager.jobs.find_race(race_id)).owner, f"race {race_id!r}")
    await manager.jobs.delete_race(race_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
