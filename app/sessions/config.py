"""The session configuration: one validated JSON object, every field defaulted (TFP's defaults).

Registries drive validation (an unknown name lists the known ones) and limits come from
`Settings`, so a 422 always names the field, the value and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from app.settings import get_settings

Problem = Literal["binary", "multiclass", "regression"]
RegularizationName = Literal["none", "l1", "l2", "l1_l2"]

# Which losses each problem accepts, and the default output activation that goes with them.
LOSSES_FOR_PROBLEM: dict[str, tuple[str, ...]] = {
    "binary": ("binary_crossentropy", "mse"),
    "multiclass": ("sparse_categorical_crossentropy",),
    "regression": ("mse",),
}
OUTPUT_ACTIVATION: dict[str, str] = {
    "binary": "sigmoid",
    "multiclass": "softmax",
    "regression": "linear",
}
# Activations a hidden layer cannot use: step has no gradient, softmax is an output.
UNTRAINABLE_HIDDEN = ("step", "softmax")
MAX_SEED = 2**32


def _number(value: object) -> object:
    """Refuse bools and strings that pydantic's lax mode would coerce into numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _integer(value: object) -> object:
    """Refuse bools, fractions and strings for integer fields (JSON's 5.0 is the integer 5)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _boolean(value: object) -> object:
    """Refuse 0/1 and "true" for boolean fields."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


Number = Annotated[FiniteFloat, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]


def _known(kind: str, name: str, names: list[str]) -> str:
    """The name itself if the registry knows it, else a ValueError listing the known names."""
    if name not in names:
        shown = repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"
        raise ValueError(f"unknown {kind} {shown}; expected one of: {', '.join(names)}")
    return name


# ---- the OpenAPI schema says what the validators enforce -----------------------------------
# The limits are settings and the names are registries, both read when the schema is built
# (validation reads the same settings), so /openapi.json and schemathesis see the real bounds.

def at_most(setting: str, key: str = "maximum") -> Callable[[dict[str, Any]], None]:
    """json_schema_extra: `key` (maximum, maxItems, maxLength) = the setting's value."""

    def extra(schema: dict[str, Any]) -> None:
        schema[key] = getattr(get_settings(), setting)

    return extra


def one_of_registry(registry: str, exclude: tuple[str, ...] = ()) -> Callable[
    [dict[str, Any]], None
]:
    """json_schema_extra: `enum` = the registry's names (e.g. "activations")."""

    def extra(schema: dict[str, Any]) -> None:
        names = [n for n in registry_names(registry) if n not in exclude]
        target = schema.get("items", schema) if schema.get("type") == "array" else schema
        target["enum"] = names

    return extra


def registry_names(registry: str) -> list[str]:
    """The names of one of the registries that validate config fields."""
    from app.datasets import DATASETS, FEATURES
    from app.engine import activations, initializers, losses, optimizers

    registries: dict[str, Any] = {
        "datasets": DATASETS, "features": FEATURES, "activations": activations.ACTIVATIONS,
        "initializers": initializers.INITIALIZERS, "optimizers": optimizers.OPTIMIZERS,
        "losses": losses.LOSSES,
    }
    return list(registries[registry])


def _features_schema(schema: dict[str, Any]) -> None:
    one_of_registry("features")(schema)
    schema["uniqueItems"] = True


Row = Annotated[list[Number], Field(json_schema_extra={"minItems": 3, "maxItems": 3})]


def _at_most(field: str, value: float, setting: str) -> None:
    """Raise naming the field, its value and the setting that bounds it."""
    limit = getattr(get_settings(), setting)
    if value > limit:
        raise ValueError(f"{field} = {value} exceeds {setting} = {limit}")


class LayerConfig(BaseModel):
    """One hidden layer: Dense(units, activation) with optional batch norm and dropout."""

    model_config = ConfigDict(extra="forbid")

    units: Integer = Field(default=4, ge=1, json_schema_extra=at_most("max_units_per_layer"))
    activation: str = Field(
        default="tanh", json_schema_extra=one_of_registry("activations", UNTRAINABLE_HIDDEN)
    )
    dropout: Number = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: Boolean = False

    @field_validator("units")
    @classmethod
    def _units_limit(cls, units: int) -> int:
        _at_most("units", units, "max_units_per_layer")
        return units

    @field_validator("activation")
    @classmethod
    def _activation_known(cls, name: str) -> str:
        from app.engine.activations import ACTIVATIONS

        allowed = [n for n in ACTIVATIONS if n not in UNTRAINABLE_HIDDEN]
        return _known("activation", name, allowed)


def _default_layers() -> list[LayerConfig]:
    return [LayerConfig(units=4), LayerConfig(units=2)]


class SessionConfig(BaseModel):
    """Everything that defines a training session; `{}` is TensorFlow Playground's default."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(default="circle", json_schema_extra=one_of_registry("datasets"))
    points: list[Row] | None = Field(
        default=None, json_schema_extra=lambda s: s.update(
            minItems=4, maxItems=get_settings().max_samples
        ),
    )
    # With `points`: an explicit test set (then `points` are all training points).
    test_points: list[Row] | None = Field(
        default=None, json_schema_extra=lambda s: s.update(
            minItems=1, maxItems=get_settings().max_samples - 4
        ),
    )
    n_samples: Integer | None = Field(
        default=None, ge=4, json_schema_extra=at_most("max_samples")
    )
    noise: Number = Field(default=0.0, ge=0.0, le=0.5)
    train_ratio: Number = Field(default=0.5, ge=0.1, le=0.9)
    seed: Integer = Field(default=0, ge=0, lt=MAX_SEED)
    features: list[str] = Field(
        default_factory=lambda: ["x1", "x2"], min_length=1,
        json_schema_extra=_features_schema,
    )
    layers: list[LayerConfig] = Field(
        default_factory=_default_layers, json_schema_extra=at_most("max_hidden_layers", "maxItems")
    )
    problem: Problem | None = None
    loss: str | None = Field(default=None, json_schema_extra=one_of_registry("losses"))
    initializer: str = Field(
        default="glorot_uniform", json_schema_extra=one_of_registry("initializers")
    )
    # Multiplies every initial kernel: a random start that is too small (< 1) or too large.
    init_scale: Number = Field(default=1.0, gt=0.0, le=100.0)
    # Which draw of the initial weights from the seed's init stream (reset re-rolls: +1).
    init_draw: Integer = Field(default=0, ge=0, lt=MAX_SEED)
    optimizer: str = Field(default="sgd", json_schema_extra=one_of_registry("optimizers"))
    learning_rate: Number = Field(default=0.03, gt=0.0, le=10.0)
    # None = the optimizer's own default: 0 for sgd and rmsprop, 0.9 for "momentum".
    momentum: Number | None = Field(default=None, ge=0.0, lt=1.0)
    nesterov: Boolean = False
    rho: Number = Field(default=0.9, ge=0.0, lt=1.0)
    beta_1: Number = Field(default=0.9, ge=0.0, lt=1.0)
    beta_2: Number = Field(default=0.999, ge=0.0, lt=1.0)
    epsilon: Number = Field(default=1e-7, gt=0.0, le=1.0)
    initial_accumulator_value: Number = Field(default=0.1, ge=0.0, le=10.0)
    batch_size: Integer = Field(default=10, ge=1, json_schema_extra=at_most("max_batch_size"))
    regularization: RegularizationName = "none"
    regularization_rate: Number = Field(default=0.0, ge=0.0, le=10.0)
    max_norm: Number | None = Field(default=None, gt=0.0, le=1e3)
    early_stopping_patience: Integer | None = Field(default=None, ge=0, le=1_000_000)
    augmentation: Boolean = False
    epoch_budget: Integer | None = Field(
        default=None, ge=1, json_schema_extra=at_most("max_epoch_budget")
    )
    grid_resolution: Integer = Field(
        default=100, ge=2, json_schema_extra=at_most("max_grid_resolution")
    )
    neuron_grid_resolution: Integer = Field(
        default=16, ge=2, json_schema_extra=at_most("max_grid_resolution")
    )
    frame_rate: Number = Field(
        default_factory=lambda: get_settings().default_frame_rate, gt=0.0,
        json_schema_extra=at_most("max_frame_rate"),
    )
    # Epochs per second, an upper bound (the learner's pace); None = as fast as the machine goes.
    speed: Number | None = Field(default=None, gt=0.0, json_schema_extra=at_most("max_speed"))
    lockstep: Boolean = False

    @field_validator("points", "test_points")
    @classmethod
    def _points_shape(
        cls, points: list[list[float]] | None, info: ValidationInfo
    ) -> list[list[float]] | None:
        if points is None:
            return None
        name = str(info.field_name)
        _at_most(f"len({name})", len(points), "max_samples")
        least = 4 if name == "points" else 1
        if len(points) < least:
            raise ValueError(f"{name} has {len(points)} rows; expected at least {least}")
        for i, row in enumerate(points):
            if len(row) != 3:
                raise ValueError(f"{name}[{i}] has {len(row)} values; expected [x1, x2, label]")
        return points

    @field_validator("n_samples")
    @classmethod
    def _n_samples_limit(cls, n: int | None) -> int | None:
        if n is not None:
            _at_most("n_samples", n, "max_samples")
        return n

    @field_validator("features")
    @classmethod
    def _features_known(cls, features: list[str]) -> list[str]:
        from app.datasets import FEATURES

        for name in features:
            _known("feature", name, list(FEATURES))
        if len(set(features)) != len(features):
            raise ValueError(f"features {features} has duplicates")
        return features

    @field_validator("layers")
    @classmethod
    def _layers_limit(cls, layers: list[LayerConfig]) -> list[LayerConfig]:
        _at_most("len(layers)", len(layers), "max_hidden_layers")
        return layers

    @field_validator("initializer")
    @classmethod
    def _initializer_known(cls, name: str) -> str:
        from app.engine.initializers import INITIALIZERS

        return _known("initializer", name, list(INITIALIZERS))

    @field_validator("optimizer")
    @classmethod
    def _optimizer_known(cls, name: str) -> str:
        from app.engine.optimizers import OPTIMIZERS

        return _known("optimizer", name, list(OPTIMIZERS))

    @field_validator("batch_size", "epoch_budget", "grid_resolution", "neuron_grid_resolution",
                     "frame_rate", "speed")
    @classmethod
    def _setting_limits(cls, value: float | None, info: ValidationInfo) -> float | None:
        setting = {
            "batch_size": "max_batch_size",
            "epoch_budget": "max_epoch_budget",
            "grid_resolution": "max_grid_resolution",
            "neuron_grid_resolution": "max_grid_resolution",
            "frame_rate": "max_frame_rate",
            "speed": "max_speed",
        }[str(info.field_name)]
        if value is not None:
            _at_most(str(info.field_name), value, setting)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        from app.datasets import DATASETS

        if self.test_points is not None:
            if self.points is None:
                raise ValueError("test_points needs points (the training points) as well")
            total = len(self.points) + len(self.test_points)
            _at_most("len(points) + len(test_points)", total, "max_samples")
        _known("dataset", self.dataset, list(DATASETS))  # with points too (the schema's enum)
        if self.points is None:
            _check_problem_fits(self.problem, self.dataset, str(DATASETS[self.dataset].kind))
        kind = self.resolved_problem()
        if self.points is not None:
            _check_labels(self.points, kind, "points")
        if self.test_points is not None:
            _check_labels(self.test_points, kind, "test_points")
        if self.loss is not None:
            allowed = list(LOSSES_FOR_PROBLEM[kind])
            if self.loss not in allowed:
                raise ValueError(
                    f"loss {self.loss!r} does not fit problem {kind!r}; expected one of: "
                    + ", ".join(allowed)
                )
        elif self.points is None and kind == "multiclass" and self.n_classes() < 2:
            raise ValueError(f"dataset {self.dataset!r} has fewer than 2 classes")
        return self

    def resolved_problem(self) -> str:
        """The problem kind: explicit, else the dataset's, else guessed from user labels."""
        if self.problem is not None:
            return self.problem
        from app.datasets import DATASETS, infer_kind

        if self.points is not None:
            return str(infer_kind([row[2] for row in self.user_rows()])[0])

        return str(DATASETS[self.dataset].kind)

    def user_rows(self) -> list[list[float]]:
        """Every user point, training then test ([] without `points`)."""
        return [*(self.points or []), *(self.test_points or [])]

    def resolved_loss(self) -> str:
        """The loss name: explicit, else the problem's natural one."""
        return self.loss or LOSSES_FOR_PROBLEM[self.resolved_problem()][0]

    def n_classes(self) -> int:
        """Output classes: 2 for binary, k for multiclass, 0 for regression."""
        kind = self.resolved_problem()
        if kind == "binary":
            return 2
        if kind == "regression":
            return 0
        if self.points is not None:
            return int(max(row[2] for row in self.user_rows())) + 1
        from app.datasets import DATASETS

        return int(DATASETS[self.dataset].n_classes)


def _check_problem_fits(problem: str | None, dataset: str, kind: str) -> None:
    """Classification needs class labels; binary needs exactly two classes."""
    # Any labels are numbers to regress on; two classes also make a 2-way softmax.
    allowed = {"binary": ["binary", "multiclass", "regression"],
               "multiclass": ["multiclass", "regression"],
               "regression": ["regression"]}[kind]
    if problem is not None and problem not in allowed:
        raise ValueError(
            f"problem {problem!r} does not fit dataset {dataset!r} ({kind}); expected one of: "
            + ", ".join(allowed)
        )


def _check_labels(points: list[list[float]], kind: str, name: str) -> None:
    """User labels must suit the problem: 0/1, class indices, or any finite number."""
    for i, row in enumerate(points):
        label = row[2]
        if kind == "binary" and label not in (0.0, 1.0):
            raise ValueError(f"{name}[{i}] label {label} is not 0 or 1 (problem 'binary')")
        if kind == "multiclass" and (label < 0 or label != math.floor(label) or label > 255):
            raise ValueError(
                f"{name}[{i}] label {label} is not a class index 0..255 (problem 'multiclass')"
            )


# Fields whose change keeps the weights and the optimizer state (everything else rebuilds).
LIVE_FIELDS = frozenset({
    "learning_rate", "momentum", "nesterov", "rho", "beta_1", "beta_2", "epsilon",
    "regularization", "regularization_rate", "max_norm", "batch_size",
    "early_stopping_patience", "epoch_budget", "augmentation", "frame_rate", "speed", "lockstep",
    "grid_resolution", "neuron_grid_resolution",
})


# Fields that only change the data: with the same problem, loss and classes they keep the model.
DATA_FIELDS = frozenset({"points", "test_points"})


def _optional_fields() -> dict[str, Any]:
    """Every field optional (absent = unchanged) with SessionConfig's own type, bounds and
    schema, so null is allowed only where the config allows it (the schema says the same)."""
    return {
        name: (field.annotation, FieldInfo.merge_field_infos(
            field, default=None, default_factory=None
        ))
        for name, field in SessionConfig.model_fields.items()
    }


# A partial config for PATCH and `set`: any subset of the fields, validated by merging.
if TYPE_CHECKING:
    SessionConfigUpdate = BaseModel
else:
    SessionConfigUpdate = create_model(
        "SessionConfigUpdate",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Any subset of SessionConfig's fields; validated by merging into the current one.",
        **_optional_fields(),
    )


def merge_config(config: SessionConfig, changes: dict[str, Any]) -> SessionConfig:
    """A new validated config with `changes` applied (raises pydantic's ValidationError)."""
    merged = config.model_dump()
    merged.update(changes)
    return SessionConfig.model_validate(merged)
