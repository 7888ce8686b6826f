"""Instruments over REST: the perceptron run, the backprop trace (a config, the lecture's
example, or a live session's current step)."""

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.deps import ManagerDep, OwnedSessionDep
from app.instruments.backprop import lecture_example
from app.instruments.perceptron_run import PERCEPTRON_DATASETS, PerceptronRun, run_perceptron
from app.instruments.session_trace import BackpropPublic, trace_session
from app.sessions.config import MAX_SEED, Boolean, Integer, Number, SessionConfig
from app.sessions.manager import SessionCallError
from app.sessions.session import TrainingSession

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON body"},
    404: {"description": "No such session"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
}

router = APIRouter(tags=["instruments"], responses=ERRORS)


def unprocessable(error: ValueError, *loc: str | int) -> HTTPException:
    """A ValueError from the instruments as FastAPI's 422 shape."""
    return HTTPException(422, [{"loc": list(loc), "msg": str(error), "type": "value_error"}])


class PerceptronRequest(BaseModel):
    """The perceptron rule on a truth table."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(default="xor-table", description=", ".join(PERCEPTRON_DATASETS))
    learning_rate: Number = Field(default=1.0, gt=0.0, le=10.0)
    epochs: Integer = Field(default=50, ge=1)
    shuffle: Boolean = False
    seed: Integer = Field(default=0, ge=0, lt=MAX_SEED)


@router.post("/api/instruments/perceptron")
def create_perceptron_run(body: PerceptronRequest) -> PerceptronRun:
    """Run the perceptron rule pass by pass; every instance's weights are in the answer."""
    try:
        return run_perceptron(
            body.dataset, body.learning_rate, body.epochs, body.shuffle, body.seed
        )
    except ValueError as error:
        raise unprocessable(error, "body") from None


class BackpropRequest(BaseModel):
    """Either the lecture's example (`preset`) or a fresh network from a session `config`."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["lecture"] | None = None
    config: SessionConfig | None = None
    learning_rate: Number | None = Field(default=None, gt=0.0, le=10.0)
    batch_start: Integer = Field(default=0, ge=0)
    batch_size: Integer | None = Field(default=None, ge=1)
    training: Boolean = True
    numeric: Boolean = True

    @model_validator(mode="after")
    def _one_source(self) -> "BackpropRequest":
        if (self.preset is None) == (self.config is None):
            raise ValueError("give exactly one of preset ('lecture') or config")
        return self


def _backprop(body: BackpropRequest) -> BackpropPublic:
    if body.preset == "lecture":
        example = lecture_example(body.learning_rate or 0.5)
        setup = {
            "inputs": example.inputs,
            "targets": example.targets,
            "weights": example.weights,
            "learning_rate": example.learning_rate,
        }
        return BackpropPublic("lecture", 0, 0, 1, example.phases, example.trace, setup)
    assert body.config is not None
    config = body.config
    if body.learning_rate is not None:
        config = config.model_copy(update={"learning_rate": body.learning_rate})
    session = TrainingSession(config, "trace")
    return trace_session(
        session, "config", body.batch_start, body.batch_size, body.training, body.numeric
    )


@router.post("/api/instruments/backprop")
async def create_backprop_trace(body: BackpropRequest) -> BackpropPublic:
    """Forward values, deltas, gradients (with numeric check) and the optimizer's next step."""
    try:
        return await run_in_threadpool(_backprop, body)
    except ValueError as error:
        raise unprocessable(error, "body") from None


@router.get("/api/sessions/{session_id}/trace", responses={
    401: {"description": "No owner token (Authorization: Bearer <owner_token>)"},
    403: {"description": "The session belongs to another owner"},
})
async def read_session_trace(
    handle: OwnedSessionDep,
    manager: ManagerDep,
    batch_start: int = Query(default=0, ge=0),
    batch_size: int | None = Query(default=None, ge=1),
    training: bool = True,
    numeric: bool = True,
) -> BackpropPublic:
    """The trace of a live session at its current step (the session is untouched).

    Owner only: the trace carries the session's weights. It is computed in the session's
    worker, on the live model without updating it, so nothing is copied into the web process.
    """
    query = {"batch_start": batch_start, "batch_size": batch_size, "training": training,
             "numeric": numeric}
    try:
        result: BackpropPublic = await manager.call(handle.session_id, "trace", query)
    except SessionCallError as error:
        if error.status == 422:
            raise HTTPException(422, [{"loc": ["query"], "msg": str(error.detail),
                                       "type": "value_error"}]) from None
        raise
    return result
