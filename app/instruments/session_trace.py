"""The backprop trace of a session's current step, and the answer the trace routes give.

Runs wherever the session lives (the session's worker for a live one), so the web process never
copies a session to trace it.
"""

from dataclasses import dataclass
from typing import Any

from app.instruments.backprop import BackpropTrace, Phase, trace_model
from app.sessions.session import TrainingSession
from app.settings import get_settings


@dataclass(frozen=True)
class BackpropPublic:
    """A trace, plus the phases of the worked example when it is the lecture's."""

    source: str  # "lecture", "config" or "session"
    epoch: int
    batch_start: int
    batch_size: int
    phases: list[Phase] | None
    trace: BackpropTrace
    example: dict[str, Any] | None = None  # the lecture's inputs, targets, weights, eta


def trace_session(
    session: TrainingSession,
    source: str,
    start: int,
    size: int | None,
    training: bool,
    numeric: bool,
) -> BackpropPublic:
    """Trace the batch x_train[start:start + size] (size defaults to the config's batch size)."""
    n_train = session.data.x_train.shape[0]
    if start >= n_train:
        raise ValueError(f"batch_start = {start} must be below the {n_train} training points")
    size = session.config.batch_size if size is None else size
    limit = get_settings().max_batch_size
    if size > limit:
        raise ValueError(f"batch_size = {size} exceeds max_batch_size = {limit}")
    batch = slice(start, min(start + size, n_train))
    x, y = session.data.x_train[batch], session.data.y_train[batch]
    # trace_model works on a copy: the live session's noise streams and statistics stay put.
    trace = trace_model(session.model, x, y, training=training, numeric=numeric)
    return BackpropPublic(source, session.epoch, start, x.shape[0], None, trace)


