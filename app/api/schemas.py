"""Request and response models of the REST API and the websocket (docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.sessions.config import (
    MAX_SEED,
    Boolean,
    Integer,
    Number,
    SessionConfig,
    SessionConfigUpdate,
)
from app.sessions.export import SessionExport

SessionCreate = SessionConfig
SessionUpdate = SessionConfigUpdate
SessionImport = SessionExport

CommandId = Annotated[str, Field(max_length=64)] | Integer | None


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: CommandId = None


class PlayCommand(_Command):
    """Start (or continue) training."""

    type: Literal["play"]


class PauseCommand(_Command):
    """Stop after the current epoch."""

    type: Literal["pause"]


class StepCommand(_Command):
    """Train exactly n more epochs, then pause."""

    type: Literal["step"]
    n: Integer = Field(default=1, ge=1)


class ResetCommand(_Command):
    """New initial weights (init_draw + 1), same data; same_start: the run's own start again."""

    type: Literal["reset"]
    same_start: Boolean = False


class RegenerateCommand(_Command):
    """New data from a seed (null = current seed + 1)."""

    type: Literal["regenerate"]
    seed: Integer | None = Field(default=None, ge=0, lt=MAX_SEED)


class SetCommand(_Command):
    """Change config fields live (see docs/protocol.md for which keep the weights)."""

    type: Literal["set"]
    config: SessionConfigUpdate


class EditWeightCommand(_Command):
    """Set one kernel or bias entry of a Dense layer."""

    type: Literal["edit_weight"]
    layer: Integer = Field(ge=0)
    param: Literal["kernel", "bias"]
    index: list[Integer] = Field(min_length=1, max_length=2)
    value: Number = Field(ge=-1e6, le=1e6)


Point = Annotated[list[Number], Field(min_length=2, max_length=2)]


class PredictCommand(_Command):
    """Outputs of the model at some points."""

    type: Literal["predict"]
    points: list[Point] = Field(min_length=1)


Command = Annotated[
    PlayCommand | PauseCommand | StepCommand | ResetCommand | RegenerateCommand | SetCommand
    | EditWeightCommand | PredictCommand,
    Field(discriminator="type"),
]
COMMAND_TYPES = ("play", "pause", "step", "reset", "regenerate", "set", "edit_weight", "predict")


class PredictRequest(BaseModel):
    """Points [[x1, x2], ...] to evaluate the model at."""

    model_config = ConfigDict(extra="forbid")

    points: list[Point] = Field(min_length=1)


class PredictPublic(BaseModel):
    """The raw model outputs per point (null where not finite)."""

    outputs: list[list[float | None]]


class MetricsPublic(BaseModel):
    """The latest epoch's losses and accuracies (null before the first epoch)."""

    train_loss: float | None
    test_loss: float | None
    train_accuracy: float | None
    test_accuracy: float | None


class InstabilityWarning(BaseModel):
    """The loss says the learning rate is too high (app/sessions/stability.py)."""

    kind: Literal["unstable", "rising"]
    message: str
    since_epoch: int
    suggested_learning_rate: float


class SessionPublic(BaseModel):
    """A session as REST and the websocket hello show it."""

    id: str
    status: Literal["paused", "running", "finished", "diverged"]
    status_reason: str | None
    warning: InstabilityWarning | None
    epoch: int
    config: SessionConfig
    weights_hash: str
    metrics: MetricsPublic
    n_train: int
    n_test: int
    ws_url: str


class CsvUpload(BaseModel):
    """CSV text with rows x1,x2,label (an optional header line)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    problem: Literal["binary", "multiclass", "regression"] | None = None


class CsvPoints(BaseModel):
    """Parsed user points, ready for SessionConfig.points."""

    points: list[list[float]]
    n_points: int
    kind: str
    n_classes: int


class DatasetPreview(BaseModel):
    """A dataset's train and test points [x1, x2, label]."""

    name: str
    kind: str
    n_classes: int
    train: list[list[float]]
    test: list[list[float]]


class Health(BaseModel):
    """Liveness and counts."""

    status: Literal["ok"]
    sessions: int
    workers: int


class Registry(BaseModel):
    """Everything the page builds its menus from (one registry entry adds an option)."""

    datasets: dict[str, dict[str, Any]]
    activations: dict[str, dict[str, Any]]
    losses: dict[str, dict[str, Any]]
    optimizers: dict[str, dict[str, Any]]
    initializers: dict[str, dict[str, Any]]
    regularizers: dict[str, dict[str, Any]]
    features: dict[str, dict[str, Any]]
    problems: list[str]
    limits: dict[str, Any]
    defaults: dict[str, Any]


__all__ = [
    "COMMAND_TYPES",
    "Boolean",
    "Command",
    "CsvPoints",
    "CsvUpload",
    "DatasetPreview",
    "Health",
    "InstabilityWarning",
    "PredictPublic",
    "PredictRequest",
    "Registry",
    "SessionCreate",
    "SessionImport",
    "SessionPublic",
    "SessionUpdate",
]
