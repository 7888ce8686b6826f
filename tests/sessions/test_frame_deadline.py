"""The worker's frame deadline (app/sessions/worker.py FRAME_DEADLINE): while paced sessions are
late on their epochs, a watched session's frame waits for them only until its page has gone
FRAME_DEADLINE without one (issue 10's classroom: >= 10 frames/s per learner), and only with new
epochs in it. Gold: the deadline computed by hand (0.075 s - 1/30 s of cadence = 41.7 ms)."""

from __future__ import annotations

import time

import pytest

from app.sessions import worker as worker_module
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession
from app.sessions.worker import Runner, Worker
from tests.sessions.worker_sink import Sink


class FrameSink(Sink):
    """The worker's pipe (tests/sessions/worker_sink.py) and what this test reads of it."""

    def frames(self) -> list[tuple[str, int]]:
        """(session id, last epoch) of the frames sent, in order."""
        return [(sid, part.last_epoch) for m in self.sent if m[0] == "frames"
                for sid, part in m[1]]


def late_worker(frame_age: float) -> tuple[Worker, FrameSink, list[Runner]]:
    """Three watched sessions at pace 20, each two epochs late (the worker is behind), whose
    frame fell due `frame_age` seconds ago, with an epoch no frame carried yet."""
    sink = FrameSink()
    worker = Worker(sink)  # type: ignore[arg-type]
    runners = [Runner(TrainingSession(SessionConfig(speed=20.0), f"s{n}"), subscribers=1)
               for n in range(3)]
    worker.runners = {r.session.id: r for r in runners}
    for runner in runners:
        runner.session.train_one_epoch()  # warm, and an epoch not sent yet
        runner.session.play()
    now = time.monotonic()
    for runner in runners:
        runner.next_epoch_at = now - 0.1
        runner.next_frame_at, runner.dirty = now - frame_age, True
    return worker, sink, runners


def test_the_slack_is_the_deadline_less_the_cadence() -> None:
    """frame_rate 30: 75 ms - 33.3 ms; frame_rate 10 and slower: no slack at all."""
    runner = Runner(TrainingSession(SessionConfig(speed=20.0), "a"))
    assert abs(Worker._frame_slack(runner) - (0.075 - 1 / 30)) < 1e-12
    assert worker_module.FRAME_DEADLINE == 0.075
    slow = Runner(TrainingSession(SessionConfig(speed=20.0, frame_rate=10), "b"))
    assert Worker._frame_slack(slow) == 0.0


def test_frames_within_the_slack_wait_for_the_late_epochs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Due 20 ms ago, within the slack: the round trains the late epochs and sends no frame
    (the deadline raised to 5 s here, so a slow round on a loaded machine cannot reach it)."""
    monkeypatch.setattr(worker_module, "FRAME_DEADLINE", 5.0)
    worker, sink, runners = late_worker(0.02)
    worker._train_round(worker._ready())
    worker._flush_frames()
    assert all(r.session.epoch >= 3 for r in runners)
    assert sink.frames() == []


def test_frames_at_their_deadline_go_out_during_the_round_with_new_epochs() -> None:
    """Due 70 ms ago (> 56.7 ms): each session's frame goes out in the round although the
    epochs are late, each with an epoch the page had not seen (last epoch >= 1)."""
    worker, sink, runners = late_worker(0.07)
    before = time.monotonic()
    worker._train_round(worker._ready())
    worker._flush_frames()
    sent = sink.frames()
    assert sorted(sid for sid, _ in sent) == ["s0", "s1", "s2"]
    assert all(epoch >= 1 for _, epoch in sent)
    # The next one counts its cadence from when this one went: one interval (1/30 s) later.
    for runner in runners:
        assert runner.next_frame_at >= before + 1 / 30
