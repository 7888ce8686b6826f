"""The worker side of saved runs: a run's record from a live session, a saved run's view.

Both run in a worker process (op "run", app/sessions/worker_ops.py), never on the web process's
event loop: the export's JSON and the thumbnail's forward pass are CPU work (the gzip runs in a
web-process thread: zlib releases the GIL). A view imports the saved export into a transient
TrainingSession that no worker registers (nothing trains it, nobody can command it), builds the
same full-history frame a websocket's hello carries, and drops it.
"""

from __future__ import annotations

import gzip
import json
import math
import secrets
import struct
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from app.datasets import featurize
from app.sessions.build import grid_points
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.frame_builder import build_part
from app.sessions.frames import frame_bytes
from app.sessions.history import History
from app.sessions.session import CommandRefused, TrainingSession

Array = npt.NDArray[np.float64]
VIEW_FORMAT = "nn-playground-run-view"


def run_call(session: TrainingSession | None, payload: dict[str, Any]) -> Any:
    """The worker's op "run": {"kind": "snapshot", ...} on a live session, or {"kind": "view",
    "export": gzip bytes, ...} on a saved run (`session` is then None)."""
    kind = payload.get("kind")
    if kind == "snapshot":
        if session is None:
            raise LookupError("snapshot needs a live session")
        return snapshot(session, payload["thumbnail_size"], payload["extent"])
    if kind == "view":
        return view(payload["export"], payload["session_id"], payload["run"])
    raise ValueError(f"unknown run operation {kind!r}; expected snapshot or view")


def snapshot(session: TrainingSession, thumbnail_size: int, extent: float) -> dict[str, Any]:
    """A run's record: the summary columns, the full export's JSON, the thumbnail (at once;
    the worker builds it in slices instead: SnapshotBuild, the job RunSaveJob)."""
    build = SnapshotBuild(session, thumbnail_size, extent)
    while not build.advance(math.inf):
        pass
    return build.result()


class SnapshotBuild:
    """A run's record built a slice at a time, so the worker's other sessions keep training
    (app/sessions/worker_jobs.py RunSaveJob; a 100,000-epoch history's JSON is ~1 s of CPU).

    The state is taken when it is made: the summary, the thumbnail, the export without its
    history and a copy of the history rows; `advance` then writes the history's JSON column by
    column, SLICE values per unit. The bytes equal json.dumps(export_session(session),
    allow_nan=False) at that moment (non-finite values as null), whatever the session does
    meanwhile.

    A diverged network (weights not finite) is refused: its export could not be imported, so
    its link could show nothing and continue nothing.
    """

    SLICE = 8192  # history values per unit of work (~5 ms of JSON on this machine)

    def __init__(self, session: TrainingSession, thumbnail_size: int, extent: float) -> None:
        if not all(np.all(np.isfinite(w)) for w in session.model.get_weights()):
            raise CommandRefused(
                f"session {session.id!r} diverged: its weights are not finite numbers, so it "
                "cannot be saved as a run; reset or restart it first"
            )
        self.record: dict[str, Any] = {
            **summary(session),
            "thumbnail": thumbnail(session, thumbnail_size, extent),
            "thumbnail_size": thumbnail_size,
        }
        history = session.history
        self.columns = list(history.columns)
        self.table = history.rows()  # a copy: training goes on meanwhile
        session.history = History(history.norm_count)  # the export's other fields, cheaply
        try:
            data = export_session(session)
        finally:
            session.history = history
        marker = f"@@history-{secrets.token_hex(16)}@@"
        data["history"] = marker
        head = json.dumps(data, allow_nan=False)
        before, after = head.split(json.dumps(marker), 1)
        self.parts: list[str] = [before, "{"]
        self.tail = after
        self.column = 0
        self.row = 0  # next row of the current column
        self.done = False

    @property
    def total(self) -> int:
        """Units (slices) in all, for the job's progress."""
        per_column = -(-len(self.table) // self.SLICE) if len(self.table) else 0
        return per_column * len(self.columns)

    @property
    def units_done(self) -> int:
        """Units done so far."""
        per_column = -(-len(self.table) // self.SLICE) if len(self.table) else 0
        return self.column * per_column + -(-self.row // self.SLICE)

    def advance(self, cpu_end: float) -> bool:
        """Write slices until thread CPU time `cpu_end` (at least one); True once done."""
        while not self.done:
            self._unit()
            if time.thread_time() >= cpu_end:
                break
        return self.done

    def _unit(self) -> None:
        n, width = len(self.table), len(self.columns)
        if self.column >= width:
            self.parts += ["}", self.tail]
            self.done = True
            return
        if self.row == 0:
            if self.column:
                self.parts.append(", ")
            self.parts.append(json.dumps(self.columns[self.column]) + ": [")
        end = min(n, self.row + self.SLICE)
        values = self.table[self.row:end, self.column]
        items: list[float | None] = list(values.tolist())
        for index in np.flatnonzero(~np.isfinite(values)):
            items[index] = None
        if items:
            self.parts.append((", " if self.row else "") + json.dumps(items)[1:-1])
        self.row = end
        if self.row >= n:
            self.parts.append("]")
            self.column, self.row = self.column + 1, 0

    def result(self) -> dict[str, Any]:
        """The record (summary columns, export_json, thumbnail), once done."""
        if not self.done:
            raise RuntimeError("the snapshot is not built yet")
        return {**self.record, "export_json": "".join(self.parts).encode()}


def summary(session: TrainingSession) -> dict[str, Any]:
    """What the gallery lists: data, problem, shape ("2-4-2-1"), parameters, epochs, losses."""
    config = session.config
    problem = config.resolved_problem()
    outputs = config.n_classes() if problem == "multiclass" else 1
    units = [len(config.features), *(layer.units for layer in config.layers), outputs]
    parameters = sum(int(p.size) for p in session.model.parameters().values())
    metrics = session.metrics()
    return {
        "dataset": "user" if config.points is not None else config.dataset,
        "problem": problem,
        "shape": "-".join(str(u) for u in units),
        "parameters": parameters,
        "epochs": session.epoch,
        "optimizer": config.optimizer,
        "train_loss": _finite(metrics["train_loss"]),
        "test_loss": _finite(metrics["test_loss"]),
    }


def thumbnail(session: TrainingSession, size: int, extent: float) -> bytes:
    """The decision boundary on a size x size grid, uint8 row-major, row 0 at the top.

    binary: 255 * P(class 1); regression: the prediction clipped to [-1, 1], mapped to 0..255;
    multiclass: the predicted class index (0..k-1). docs/protocol.md "Runs and the gallery".
    """
    points = featurize(grid_points(size, extent), session.config.features)
    with np.errstate(all="ignore"):
        output = session.model.predict(points)
    problem = session.config.resolved_problem()
    if problem == "multiclass":
        codes = np.argmax(np.nan_to_num(output, nan=0.0), axis=1)
    else:
        values = np.nan_to_num(output[:, 0], nan=0.5 if problem == "binary" else 0.0)
        if problem == "regression":
            values = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0
        codes = np.rint(np.clip(values, 0.0, 1.0) * 255.0)
    return bytes(codes.astype(np.uint8))


def view(export_gz: bytes, session_id: str, run: dict[str, Any]) -> bytes:
    """A saved run as a websocket's hello shows a session, from a transient session: a hello
    JSON message (`run` and SessionPublic), then the full-history frame (grids, weights, every
    epoch's row), each prefixed by its 4-byte big-endian length (docs/protocol.md)."""
    data = SessionExport.model_validate_json(gzip.decompress(export_gz))
    session = import_session(data, session_id)
    hello = {"type": "hello", "protocol": 1, "format": VIEW_FORMAT, "run": run,
             "session": session.public()}
    text = json.dumps(hello, allow_nan=False, default=str).encode()
    frame = frame_bytes(build_part(session, 1), 0)
    return b"".join(struct.pack(">I", len(m)) + m for m in (text, frame))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
