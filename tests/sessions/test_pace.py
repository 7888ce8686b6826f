"""The learner's pace (config.speed) in a real worker: rate, evenness, live changes, idle CPU.

Every figure is wall-clock measured against the clock of this test, with bounds generous enough
for a loaded 2-core machine (a late worker trains fewer epochs, never more) but tight enough
that training flat out, bursting, or spinning while waiting fails them.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from app.sessions.config import SessionConfig
from app.sessions.frames import FramePart
from app.sessions.runner import CATCH_UP, Runner
from app.sessions.session import TrainingSession
from app.sessions.worker import Worker, worker_main
from tests.sessions.worker_sink import Sink


class WorkerClient:
    """The web side of one worker's pipe, as the manager drives it: calls, replies, frames.

    Every frame is reported taken at once, as a web process whose clients keep up would.
    """

    def __init__(self, conn: Connection, take: bool = True) -> None:
        self.conn = conn
        self.take = take
        self.send_lock = threading.Lock()
        self.ids = itertools.count(1)
        self.replies: dict[int, tuple[int, Any]] = {}
        self.frames: dict[str, list[tuple[float, FramePart]]] = {}
        self.arrived = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            with self.arrived:
                if message[0] == "reply":
                    self.replies[message[1]] = (message[2], message[3])
                elif message[0] == "frames":  # not "ready", "checkpoint" or "job" (issue 10)
                    for session_id, part in message[1]:
                        self.frames.setdefault(session_id, []).append((time.monotonic(), part))
                self.arrived.notify_all()
            if message[0] == "frames" and self.take:
                with contextlib.suppress(OSError):  # the worker may have stopped meanwhile
                    self.send(("taken", [session_id for session_id, _ in message[1]]))

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def call(self, op: str, session_id: str, payload: Any = None, timeout: float = 30.0) -> Any:
        """Send a call and wait for its reply; returns the payload of a 200, raises otherwise."""
        request_id = next(self.ids)
        self.send(("call", request_id, op, session_id, payload))
        with self.arrived:
            if not self.arrived.wait_for(lambda: request_id in self.replies, timeout):
                raise AssertionError(f"no reply to {op} within {timeout} s")
            status, body = self.replies.pop(request_id)
        if status != 200:
            raise AssertionError(f"{op} answered {status}: {body}")
        return body

    def close(self) -> None:
        """After the worker ended: its end of the pipe is closed, so the reader sees EOF."""
        self.reader.join(10)
        self.conn.close()

    def create(self, session_id: str, **config: Any) -> None:
        self.call("create", session_id, config)

    def epoch(self, session_id: str) -> int:
        epoch: int = self.call("get", session_id)["epoch"]
        return epoch


@pytest.fixture
def worker() -> Iterator[tuple[WorkerClient, threading.Thread]]:
    """A real worker loop in a thread of this process (as with worker_processes=0)."""
    conn, child = multiprocessing.Pipe(duplex=True)
    thread = threading.Thread(target=worker_main, args=(child,), daemon=True)
    thread.start()
    client = WorkerClient(conn)
    yield client, thread
    client.send(("stop",))
    thread.join(10)
    client.close()


def thread_cpu_seconds(thread: threading.Thread) -> float:
    """User + system CPU time of one thread of this process, from /proc (10 ms ticks)."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_speed_20_trains_about_20_epochs_a_second_never_more(
    worker: tuple[WorkerClient, threading.Thread],
) -> None:
    client, _ = worker
    client.create("a", speed=20.0)
    began = time.monotonic()
    client.call("command", "a", {"type": "play"})
    time.sleep(2.0)
    epochs = client.epoch("a")
    elapsed = time.monotonic() - began
    pace = 20.0 * elapsed + 1  # the first epoch is due at play
    # Flat out this net trains thousands of epochs a second; at the pace, about 41.
    assert 0.6 * pace <= epochs <= pace + 2, (epochs, elapsed)


def test_frames_carry_the_epochs_evenly_and_never_run_ahead_of_the_pace(
    worker: tuple[WorkerClient, threading.Thread],
) -> None:
    client, _ = worker
    client.create("a", speed=60.0, frame_rate=30.0)
    client.call("subscribe", "a")
    began = time.monotonic()
    client.call("command", "a", {"type": "play"})
    time.sleep(2.0)
    client.call("command", "a", {"type": "pause"})
    frames = client.frames["a"]
    for arrived, part in frames:
        assert part.header["epoch"] <= 60.0 * (arrived - began) + 3, "ahead of the pace"
    rows = [len(part.rows) for _, part in frames if len(part.rows)]
    # 60 epochs/s at 30 frames/s: two epochs a frame, not 120 in one burst then nothing.
    assert 1 <= statistics.median(rows) <= 3, rows
    assert 25 <= len(rows) <= 70, rows
    assert sum(rows) == frames[-1][1].header["epoch"]  # every epoch once


def test_at_speed_1_a_frame_goes_out_only_for_a_new_epoch(
    worker: tuple[WorkerClient, threading.Thread],
) -> None:
    client, _ = worker
    client.create("a", speed=1.0, frame_rate=30.0)
    client.call("subscribe", "a")
    client.call("command", "a", {"type": "play"})
    time.sleep(2.5)
    client.call("command", "a", {"type": "pause"})
    frames = client.frames["a"]
    epochs = [part.header["epoch"] for _, part in frames]
    # Epochs 1, 2, 3 (due at 0, 1 and 2 s), plus the frames right after play and pause.
    assert 2 <= epochs[-1] <= 3, epochs
    assert len(frames) <= epochs[-1] + 2, epochs


def test_a_live_speed_change_keeps_the_weights_and_takes_effect_at_once(
    worker: tuple[WorkerClient, threading.Thread],
) -> None:
    client, _ = worker
    client.create("a", speed=5.0)
    client.call("command", "a", {"type": "play"})
    time.sleep(0.5)
    before = client.call("update", "a", {"speed": 50.0})
    began = time.monotonic()
    time.sleep(1.5)
    paused = client.call("command", "a", {"type": "pause"})
    elapsed = time.monotonic() - began
    trained = paused["epoch"] - before["epoch"]
    assert before["epoch"] >= 1 and before["config"]["speed"] == 50.0
    assert 0.6 * 50.0 * elapsed <= trained <= 50.0 * elapsed + 3, (trained, elapsed)
    # Paused: a change of speed keeps the model exactly (a live field).
    after = client.call("update", "a", {"speed": None})
    assert (after["epoch"], after["weights_hash"]) == (paused["epoch"], paused["weights_hash"])
    # null = as fast as the machine goes: far beyond any pace (thousands of epochs a second).
    client.call("command", "a", {"type": "play"})
    time.sleep(0.5)
    fast = client.call("command", "a", {"type": "pause"})["epoch"] - after["epoch"]
    assert fast > 10 * 50.0 * 0.5, fast


def test_step_n_trains_at_the_pace(worker: tuple[WorkerClient, threading.Thread]) -> None:
    client, _ = worker
    client.create("a", speed=20.0)
    client.call("command", "a", {"type": "step", "n": 10})
    time.sleep(0.25)
    early = client.epoch("a")
    time.sleep(0.75)
    done = client.call("get", "a")
    # 10 epochs at 20/s: ~6 after 0.25 s (epoch 1 is due at once), all 10 by 0.45 s.
    assert 2 <= early <= 8, early
    assert (done["epoch"], done["status"]) == (10, "paused")


def test_waiting_paced_sessions_cost_the_worker_almost_no_cpu(
    worker: tuple[WorkerClient, threading.Thread],
) -> None:
    client, thread = worker
    for i in range(10):
        client.create(f"s{i}", speed=2.0)
        client.call("subscribe", f"s{i}")  # frames are built and sent, as for the page
    for i in range(10):
        client.call("command", f"s{i}", {"type": "play"})
    time.sleep(0.3)  # the replies and first frames settle
    cpu, began = thread_cpu_seconds(thread), time.monotonic()
    time.sleep(2.0)
    cpu, elapsed = thread_cpu_seconds(thread) - cpu, time.monotonic() - began
    epochs = [client.epoch(f"s{i}") for i in range(10)]
    assert all(4 <= e <= 7 for e in epochs), epochs  # they did train, at the pace
    # A loop that spun while waiting would use the whole 2 s (or half, sharing the GIL); the
    # 20 epochs and frames themselves take 0.10-0.13 CPU-s here (10 ms clock ticks).
    assert cpu < 0.2 * elapsed, f"worker used {cpu:.3f} CPU-s in {elapsed:.2f} s"


def test_the_catch_up_after_falling_behind_is_a_quarter_second_of_epochs() -> None:
    # Hand-computed: at 64 epochs/s (1/64 s is exact in binary), 10 s behind, the debt is
    # capped at 0.25 s = 16 epochs, trained at once with the one due now: 17, not 640.
    runner = Runner(TrainingSession(SessionConfig(speed=64.0)))
    runner.restart_pace(100.0)
    runner.paced_epoch_done(110.0)
    assert runner.next_epoch_at == 110.0 - CATCH_UP == 109.75
    burst = 0
    while runner.due(110.0):
        runner.paced_epoch_done(110.0)
        burst += 1
    assert burst == 17


def test_a_worker_stopped_by_the_os_does_not_burst_through_its_debt() -> None:
    """A real worker process frozen (SIGSTOP) for 1.5 s at speed 100 owes 150 epochs."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe(duplex=True)
    process = context.Process(target=worker_main, args=(child,), daemon=True)
    process.start()
    child.close()
    client = WorkerClient(conn)
    try:
        client.create("a", speed=100.0)
        client.call("command", "a", {"type": "play"})
        time.sleep(0.3)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(1.5)
        request_id = next(client.ids)
        client.send(("call", request_id, "get", "a", None))  # served first when it resumes
        os.kill(process.pid, signal.SIGCONT)
        with client.arrived:
            assert client.arrived.wait_for(lambda: request_id in client.replies, 10)
            first = client.replies.pop(request_id)[1]["epoch"]
        began = time.monotonic()
        time.sleep(0.5)
        last = client.epoch("a")
        elapsed = time.monotonic() - began
        # Capped: 25 epochs of catch-up plus the pace; uncapped it would be 150 plus the pace.
        assert last - first <= 100.0 * elapsed + 25 + 15, (first, last, elapsed)
    finally:
        if process.pid is not None:
            os.kill(process.pid, signal.SIGCONT)
        client.send(("stop",))
        process.join(10)
        client.close()


def test_no_new_frame_is_built_until_the_last_one_was_taken() -> None:
    """Flow control: a frame nobody took yet holds back the next; its epochs wait, none lost."""
    conn, child = multiprocessing.Pipe(duplex=True)
    thread = threading.Thread(target=worker_main, args=(child,), daemon=True)
    thread.start()
    client = WorkerClient(conn, take=False)
    try:
        client.create("a", speed=100.0, frame_rate=30.0)
        client.call("subscribe", "a")
        client.call("command", "a", {"type": "play"})
        time.sleep(0.6)
        # One frame (right after play) in 0.6 s at 30 frames/s: the worker waits for "taken".
        assert len(client.frames["a"]) == 1
        trained = client.epoch("a")
        assert trained >= 30  # training went on meanwhile, at the pace
        client.send(("taken", ["a"]))
        deadline = time.monotonic() + 5
        while len(client.frames["a"]) < 2:
            assert time.monotonic() < deadline, "no frame after taken"
            time.sleep(0.01)
        first, second = client.frames["a"][0][1], client.frames["a"][1][1]
        # The next frame carries every epoch since the first one: no row lost.
        assert second.first_epoch == first.last_epoch + 1
        assert second.last_epoch >= trained
    finally:
        client.send(("stop",))
        thread.join(10)
        client.close()


class FrameSink(Sink):
    """The worker's pipe (tests/sessions/worker_sink.py) and what this test reads of it."""

    def frames(self) -> list[str]:
        """The session ids of the frames sent, in order."""
        return [sid for m in self.sent if m[0] == "frames" for sid, _ in m[1]]


def test_frames_wait_while_a_paced_session_is_late_on_its_epochs() -> None:
    sink = FrameSink()
    worker = Worker(sink)  # type: ignore[arg-type]
    late, watched = (Runner(TrainingSession(SessionConfig(speed=20.0), name), subscribers=1)
                     for name in ("late", "watched"))
    worker.runners = {"late": late, "watched": watched}
    for runner in (late, watched):
        runner.session.train_one_epoch()  # warm: a first epoch may load the compiled kernel
        runner.session.play()
    now = time.monotonic()
    late.next_epoch_at = now - 0.1  # two epochs late at 20/s: the worker is behind
    watched.next_epoch_at = now + 10.0  # not due
    for runner in (late, watched):
        runner.next_frame_at, runner.dirty = now - 0.01, True  # a frame due 10 ms ago
    worker._train_round(worker._ready())
    worker._emit_idle_frames()
    assert late.session.epoch >= 3  # the two late epochs were trained...
    worker._flush_frames()
    assert sink.frames() == []  # ...and no frame was built meanwhile
    watched.next_frame_at = time.monotonic() - 0.3  # but no frame waits longer than 0.25 s
    worker._emit_idle_frames()
    worker._flush_frames()
    assert sink.frames() == ["watched"]
    worker._train_round(worker._ready())  # on time again: frames flow
    worker._emit_idle_frames()
    worker._flush_frames()
    assert sink.frames() == ["watched", "late"]
