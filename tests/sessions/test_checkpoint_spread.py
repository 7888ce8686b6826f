"""Periodic checkpoints are spread over passes of the worker's loop (worker.py
PERIODIC_CHECKPOINTS): sessions that come due together do not all build theirs in one pass
(a burst without frames or slices), urgent ones are never held back, and a stop sends all.
Gold: the counts of checkpoint messages per pass, by hand (2, 2, 1 for five due sessions)."""

from __future__ import annotations

import math

from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession
from app.sessions.worker import PERIODIC_CHECKPOINTS, Runner, Worker
from tests.sessions.worker_sink import Sink


class CheckpointSink(Sink):
    """The worker's pipe (tests/sessions/worker_sink.py) and what this test reads of it."""

    def checkpoints(self) -> list[str]:
        ids = [m[1].session_id for m in self.sent if m[0] == "checkpoint"]
        self.sent.clear()
        return ids


def due_worker(count: int) -> tuple[Worker, CheckpointSink]:
    """`count` running sessions, each stored once and changed since, due (not urgent)."""
    sink = CheckpointSink()
    worker = Worker(sink, checkpoint_seconds=5.0)  # type: ignore[arg-type]
    for n in range(count):
        session = TrainingSession(SessionConfig(), f"s{n}")
        session.play()
        runner = Runner(session)
        state = runner.checkpoint
        state.watch(session)
        state.history_id, state.dirty, state.urgent = session.history_id, True, False
        state.last_at = -math.inf
        worker.runners[session.id] = runner
    return worker, sink


def test_periodic_checkpoints_go_two_a_pass() -> None:
    assert PERIODIC_CHECKPOINTS == 2
    worker, sink = due_worker(5)
    counts = []
    for _ in range(4):
        worker._checkpoint_due()
        counts.append(len(sink.checkpoints()))
    assert counts == [2, 2, 1, 0]


def test_urgent_checkpoints_and_a_stop_are_never_held_back() -> None:
    worker, sink = due_worker(5)
    for runner in worker.runners.values():
        runner.checkpoint.urgent = True
    worker._checkpoint_due()
    assert len(sink.checkpoints()) == 5
    worker, sink = due_worker(5)
    worker._checkpoint_due(final=True)
    assert len(sink.checkpoints()) == 5
