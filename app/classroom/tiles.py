"""A learner's tile: the decision boundary at low resolution, for the teacher's dashboard.

Runs in the worker (op "class_tiles", app/sessions/worker_ops.py), off the web process's event
loop, only when a dashboard asks: the classroom hub asks each worker for the tiles of the
learners it holds at most `tile_fps` times a second, and a tile whose session did not change
since the last one the hub has (same `key`) is skipped, so a class that is paused costs
nothing but the question.

Encoding (docs/protocol.md "Classroom"): `size` x `size` uint8, row-major, row 0 at the top
(x2 = +extent), the same cells as the page's output grid at that resolution.
- kind "value" (binary and regression): byte b stands for v = 2 b / 255 - 1 in [-1, 1]: a binary
  output P(class 1) is drawn as 2 P - 1, a regression output clipped to [-1, 1], as the page's
  output heatmap draws them (static/js/views/output.js).
- kind "class" (multi-class): the predicted class index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from app.datasets import featurize
from app.engine import fast
from app.sessions.build import grid_points
from app.sessions.session import TrainingSession

_FEATURES: dict[tuple[int, float, tuple[str, ...]], npt.NDArray[np.float32]] = {}
_MAX_FEATURES = 16


def tile_key(session: TrainingSession) -> str:
    """What a tile depends on: the run, its epoch, its status and its weights."""
    return f"{session.history_id}:{session.epoch}:{session.status}:{session.weights_hash()}"


def _features(size: int, extent: float, names: tuple[str, ...]) -> npt.NDArray[np.float32]:
    """The size*size cell centres as features (cached: every learner of a class shares them)."""
    key = (size, extent, names)
    features = _FEATURES.get(key)
    if features is None:
        if len(_FEATURES) >= _MAX_FEATURES:
            _FEATURES.clear()
        features = featurize(grid_points(size, extent), list(names)).astype(np.float32)
        features.flags.writeable = False
        _FEATURES[key] = features
    return features


def _output(session: TrainingSession, x: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """The model's output at the points: a view of the fast forward's shared buffers (read it
    before the next forward), or the layers' own numpy forward."""
    try:
        return fast.forward_all(session.model, x, np.float32, shared=True)[-1]
    except (AttributeError, ValueError):  # a model the fast forward does not take
        out: npt.NDArray[Any] = x.astype(np.float64)
        for layer in session.model.layers:
            out = layer.forward(out, training=False)
        return out


def tile_grid(session: TrainingSession, size: int, extent: float) -> tuple[str, bytes]:
    """The session's boundary as (kind, size*size bytes), encoded as the module says.

    Few numpy passes over 576 values: each costs microseconds, as much as the values do.
    """
    problem = session.config.resolved_problem()
    output = _output(session, _features(size, extent, tuple(session.config.features)))
    with np.errstate(all="ignore"):
        if problem == "multiclass":
            return "class", np.argmax(output, axis=1).astype(np.uint8).tobytes()
        # binary: b = 255 P (v = 2P - 1); regression: b = 127.5 (v + 1); + 0.5 rounds.
        scale, shift = (255.0, 0.5) if problem == "binary" else (127.5, 128.0)
        codes = output[:, 0] * np.float32(scale)
        codes += np.float32(shift)
        if not np.isfinite(codes).all():  # a diverged network: NaN shows as the middle
            codes = np.nan_to_num(codes, nan=128.0, posinf=255.0, neginf=0.0)
        np.clip(codes, 0.0, 255.0, out=codes)
        return "value", codes.astype(np.uint8).tobytes()


def session_tile(
    session: TrainingSession, size: int, extent: float, key: str | None = None
) -> dict[str, Any]:
    """One learner's tile: the grid and what the dashboard prints under it."""
    kind, grid = tile_grid(session, size, extent)
    metrics = session.metrics()
    return {
        "session": session.id,
        "key": key if key is not None else tile_key(session),
        "epoch": session.epoch,
        "status": session.status,
        "test_loss": metrics["test_loss"],
        "train_loss": metrics["train_loss"],
        "problem": session.config.resolved_problem(),
        "kind": kind,
        "size": size,
        "grid": grid,
    }


def class_tiles(sessions: Mapping[str, TrainingSession], payload: dict[str, Any]) -> list[Any]:
    """The worker's answer to "class_tiles": a tile for every asked session it holds whose key
    differs from the one the hub has (`payload["sessions"]`: id -> key or None)."""
    size, extent = int(payload["size"]), float(payload["extent"])
    tiles = []
    for session_id, known in payload["sessions"].items():
        session = sessions.get(session_id)
        if session is None:
            continue
        key = tile_key(session)
        if key != known:
            tiles.append(session_tile(session, size, extent, key))
    return tiles
