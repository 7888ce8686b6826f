"""Export a session as plain JSON and import it back so that it continues bit-identically.

JSON only: the import validates every field with pydantic and builds arrays from numbers; nothing
is unpickled or evaluated. Floats are written by `json` with repr precision, so they round-trip.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from app.instruments.checkpoints import generators
from app.sessions.config import Integer, SessionConfig
from app.sessions.frames import EPOCH_COLUMNS, json_nested
from app.sessions.history import History
from app.sessions.session import Status, TrainingSession

Array = npt.NDArray[np.float64]
FORMAT = "nn-playground-session"
UINT128 = 2**128


class PCG64State(BaseModel):
    """The inner state of numpy's PCG64 bit generator."""

    model_config = ConfigDict(extra="forbid")

    state: Integer = Field(ge=0, lt=UINT128)
    inc: Integer = Field(ge=0, lt=UINT128)


class GeneratorState(BaseModel):
    """numpy's `Generator.bit_generator.state` for PCG64, as JSON."""

    model_config = ConfigDict(extra="forbid")

    bit_generator: Literal["PCG64"]
    state: PCG64State
    has_uint32: Integer = Field(ge=0, le=1)
    uinteger: Integer = Field(ge=0, lt=2**32)


class OptimizerState(BaseModel):
    """The optimizer's step counter and its slots per parameter name."""

    model_config = ConfigDict(extra="forbid")

    iterations: Integer = Field(ge=0)
    state: dict[str, dict[str, list[Any]]]


class EarlyStoppingState(BaseModel):
    """Best test loss so far (null = none yet) and epochs since it improved."""

    model_config = ConfigDict(extra="forbid")

    best: float | None
    wait: Integer = Field(ge=0)


class SessionExport(BaseModel):
    """A whole session as JSON (docs/protocol.md, SessionExport)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nn-playground-session"]
    version: Literal[1]
    config: SessionConfig
    status: Status
    status_reason: str | None = Field(max_length=1000)
    epoch: Integer = Field(ge=0)
    weights: list[list[Any]]
    optimizer: OptimizerState
    rng: dict[str, GeneratorState]
    history: dict[str, list[float | None]]
    early_stopping: EarlyStoppingState
    # The compact format (export_binary.py) carries the history as a table, not as lists:
    # (column names, float64 rows x columns), used instead of `history` when set.
    _history_table: tuple[list[str], Array] | None = PrivateAttr(default=None)


def export_nested(array: Array) -> list[Any]:
    """An array as the export's nested lists of floats."""
    values = json_nested(array)
    return values if isinstance(values, list) else [values]


_nested = export_nested


def export_session(session: TrainingSession, history: bool = True) -> dict[str, Any]:
    """The SessionExport dict of `session` (JSON-ready); without "history" when not `history`
    (the compact format writes it as binary columns)."""
    optimizer = session.model.optimizer
    best = session.best_test_loss
    return {
        "format": FORMAT,
        "version": 1,
        "config": session.config.model_dump(),
        "status": session.status,
        "status_reason": session.status_reason,
        "epoch": session.epoch,
        "weights": [_nested(w) for w in session.model.get_weights()],
        "optimizer": {
            "iterations": optimizer.iterations,
            "state": {
                key: {slot: _nested(value) for slot, value in slots.items()}
                for key, slots in optimizer.state.items()
            },
        },
        "rng": {name: gen.bit_generator.state for name, gen in generators(session).items()},
        **({"history": session.history.to_columns()} if history else {}),
        "early_stopping": {"best": best if math.isfinite(best) else None, "wait": session.wait},
    }


def history_from_table(columns: list[str], rows: Array, norm_count: int) -> History:
    """A History from float64 rows whose columns are named `columns` (NaN = null): the
    session's own columns, or only the four epoch columns of an export from before the
    gradient norms (their norms are NaN)."""
    history = History(norm_count)
    if columns != history.columns and columns != list(EPOCH_COLUMNS):
        raise ValueError(
            f"history has columns {', '.join(columns)}; expected {', '.join(history.columns)}"
        )
    n = len(rows)
    table = np.full((max(n, 64), len(history.columns)), np.nan)
    table[:n, : len(columns)] = rows
    history._table, history._length = table, n
    return history


def _numbers(value: Any, where: str) -> Array:
    """A float64 array from nested lists of real numbers (no bools, strings or nulls)."""
    def check(item: Any) -> None:
        if isinstance(item, list):
            for inner in item:
                check(inner)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"{where} holds {item!r}; expected finite numbers")
    check(value)
    array = np.asarray(value, dtype=np.float64)
    if array.dtype == object or not np.all(np.isfinite(array)):
        raise ValueError(f"{where} must be a rectangular array of finite numbers")
    return array


def import_session(data: SessionExport, session_id: str) -> TrainingSession:
    """A new session rebuilt from `data`, at the same epoch, weights, optimizer and rng state."""
    session = TrainingSession(data.config, session_id)
    model = session.model
    model.set_weights([_numbers(w, f"weights[{i}]") for i, w in enumerate(data.weights)])
    parameters = model.parameters()
    optimizer = model.optimizer
    state: dict[str, dict[str, Array]] = {}
    for key, slots in data.optimizer.state.items():
        if key not in parameters:
            raise ValueError(
                f"optimizer.state has {key!r}; expected parameter names: {', '.join(parameters)}"
            )
        expected = optimizer.build_state(parameters[key])
        state[key] = {}
        for slot, value in slots.items():
            if slot not in expected:
                raise ValueError(
                    f"optimizer.state[{key!r}] has slot {slot!r}; expected: {', '.join(expected)}"
                )
            array = _numbers(value, f"optimizer.state[{key!r}][{slot!r}]")
            if array.shape != expected[slot].shape:
                raise ValueError(
                    f"optimizer.state[{key!r}][{slot!r}] has shape {list(array.shape)}; "
                    f"expected {list(expected[slot].shape)}"
                )
            state[key][slot] = array
    optimizer.state = state
    optimizer.iterations = data.optimizer.iterations
    restored = generators(session)
    for name, saved in data.rng.items():
        if name not in restored:
            raise ValueError(f"rng has {name!r}; expected: {', '.join(restored)}")
        # Assigning the state keeps the same Generator object, which the layers share.
        restored[name].bit_generator.state = saved.model_dump()
    # An export from before the gradient-norm columns existed imports with NaN norms.
    if data._history_table is not None:
        names, rows = data._history_table
        session.history = history_from_table(names, rows, session.history.norm_count)
    else:
        session.history = History.from_columns(data.history, session.history.norm_count)
    if len(session.history) != data.epoch:
        raise ValueError(f"history has {len(session.history)} rows; epoch is {data.epoch}")
    session.epoch = data.epoch
    session.status = "paused" if data.status == "running" else data.status
    session.status_reason = data.status_reason
    best = data.early_stopping.best
    session.best_test_loss = math.inf if best is None else best
    session.wait = data.early_stopping.wait
    return session
