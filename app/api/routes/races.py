"""Optimizer races over REST: start one, step it, read its curves and decision grids, delete it.

Races live in the web process (app.state.races), bounded by max_sessions and expired after
session_idle_seconds unused; their training runs in the threadpool, never on the event loop.
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import app_store
from app.api.routes.instruments import unprocessable
from app.instruments.race import Race, start_race
from app.instruments.store import ExpiringStore, StoreFull
from app.sessions.config import Boolean, Integer, Number, SessionConfig

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    404: {"description": "No such race"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "max_sessions races exist"},
}

router = APIRouter(prefix="/api/races", tags=["races"], responses=ERRORS)


class RacerCreate(BaseModel):
    """One racer: an optimizer and any of its settings (unset ones come from the config)."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=60)
    optimizer: str = "sgd"
    learning_rate: Number | None = None
    momentum: Number | None = None
    nesterov: Boolean | None = None
    rho: Number | None = None
    beta_1: Number | None = None
    beta_2: Number | None = None
    epsilon: Number | None = None
    initial_accumulator_value: Number | None = None


class RaceCreate(BaseModel):
    """The shared session config (data, network, batch size, seed) and the racers."""

    model_config = ConfigDict(extra="forbid")

    config: SessionConfig = Field(default_factory=SessionConfig)
    racers: list[RacerCreate] = Field(min_length=1)


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


async def races_of(request: Request) -> ExpiringStore[Race]:
    """The app's race store, made on first use (on the event loop, so only once)."""
    store: ExpiringStore[Race] = app_store(request, "races", "race")
    return store


def _race(store: ExpiringStore[Race], race_id: str) -> Race:
    try:
        return store.get(race_id)
    except KeyError:
        raise HTTPException(404, f"race {race_id!r} not found") from None


def _public(race_id: str, race: Race, since: int, grids: bool) -> RacePublic:
    return RacePublic(
        id=race_id,
        epoch=race.epoch,
        first_epoch=since,
        racers=race.curves(since),
        grids=race.grids() if grids else None,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_race(body: RaceCreate, request: Request) -> RacePublic:
    """Racers built from one config, all with racer 0's initial weights (epoch 0)."""
    store = await races_of(request)
    racers = [r.model_dump(exclude_none=True) for r in body.racers]
    try:
        race = await run_in_threadpool(start_race, body.config, racers)
    except ValueError as error:
        raise unprocessable(error, "body", "racers") from None
    try:
        race_id = store.add(race)
    except StoreFull as error:
        raise HTTPException(429, str(error)) from None
    return await run_in_threadpool(_public, race_id, race, 1, True)


@router.get("/{race_id}")
async def read_race(race_id: str, request: Request) -> RacePublic:
    """Every epoch's curves and the current grids."""
    race = _race(await races_of(request), race_id)
    return await run_in_threadpool(_public, race_id, race, 1, True)


def _step(race_id: str, race: Race, body: RaceStep) -> RacePublic:
    first = race.step(body.epochs)
    return _public(race_id, race, first, body.grids)


@router.post("/{race_id}/step")
async def update_race(race_id: str, body: RaceStep, request: Request) -> RacePublic:
    """Train `epochs` more; the answer has the new epochs' curves only, and fresh grids."""
    race = _race(await races_of(request), race_id)
    try:
        return await run_in_threadpool(_step, race_id, race, body)
    except ValueError as error:
        raise unprocessable(error, "body", "epochs") from None


@router.delete("/{race_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_race(race_id: str, request: Request) -> Response:
    """Forget the race."""
    try:
        (await races_of(request)).remove(race_id)
    except KeyError:
        raise HTTPException(404, f"race {race_id!r} not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
