"""A worker owns many TrainingSessions and trains the running ones round-robin in short slices.

This module is the worker's loop and its scheduling: slices, paces, frames and their deadlines,
checkpoints, jobs' turns. What each call does (create, update, command, subscribe, ...) is in
app/sessions/worker_ops.py; what the loop tracks per session is a Runner (app/sessions/runner.py).

It runs as its own process (or, with worker_processes=0, as a thread in the web process) and
talks over one duplex pipe. Why a process: small nets are GIL-bound pure-Python work, so only
processes use both cores (RECIPES). Why slices: commands and frames of every session on this
worker wait at most one slice, and frames are built here, off the web process's event loop.

Pipe messages (tuples, pickled by multiprocessing between our own processes only):
  web -> worker  ("call", request_id, op, session_id, payload) | ("taken", [session_id, ...])
                 | ("stop",)
  worker -> web  ("ready",) once, when it serves | ("reply", request_id, status_code, payload)
                 | ("frames", [(session_id, FramePart), ...])
                 | ("job", JobPublic, end, memory)  (app/sessions/worker_jobs.py)
                 | ("checkpoint", SessionCheckpoint)  (app/sessions/checkpointing.py)
Checkpoints are built between slices (never inside one) and sent before the reply of the call
that made them urgent; "stop" sends every session's pending checkpoint before the worker ends.
Frames go out in batches (a pass of the loop, or FRAME_BATCH of them), each batch before any
reply that follows it, so pipe order is kept: one pickle, one write and one wake-up of the web
process's reader per batch instead of per frame.

Flow control: a watched session has at most one frame in flight. The web process says
"taken" once a client's sender took the frame from its slot; until then the worker builds no
new frame for that session (its epochs go into the next one). A web process or client that
cannot keep up so gets fewer frames, instead of frames built, pickled and merged away unseen,
and the CPU they would have cost stays with the training (the pace is kept first).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from app.engine import fast
from app.sessions.checkpointing import build_checkpoint
from app.sessions.frame_builder import build_part, flat_weights
from app.sessions.frames import FramePart, preencode
from app.sessions.runner import EARLY
from app.sessions.runner import Runner as Runner  # also imported from here (worker_jobs.py)
from app.sessions.worker_jobs import PROGRESS_PERIOD, StepJob, WorkerJob
from app.sessions.worker_ops import WorkerOps

# A session's slice shrinks as more sessions run so each gets a turn ~25 times a CPU-second.
TURN_PERIOD = 0.04
MIN_SLICE = 0.001
MAX_SLICE = 0.02
IDLE_POLL = 0.5
FRAME_BATCH = 8  # frames queued before the batch goes out in the middle of a round
# Training first: while a paced session is this late for an epoch, frames wait (the CPU goes to
# the epochs), except the ones right after a command and those at their deadline.
BEHIND = 0.05
# A frame deadline: a watched session's page gets a frame (with new epochs) at least this
# often, even when its epochs are late. A page needs its 10th frame of a second more than its
# session needs the 61st epoch: 60 learners at pace 60 on 2 cores got 3 frames/s when frames
# waited 0.25 s for the epochs (issue 10's classroom: >= 10 frames/s per learner). 75 ms, not
# 90: a frame goes out at the first turn or late scan after its deadline, so where the deadline
# binds a page gets a little under 1/FRAME_DEADLINE frames a second (90 ms: at most 11.1, too
# close to 10; 75 ms: at most 13.3). It binds only when the CPU is short of frames and epochs.
FRAME_DEADLINE = 0.075
# How often a round looks for frames at their deadline between two turns (a round of 30
# sessions is ~50-100 ms: waiting for the round's end would miss the deadline).
LATE_FRAME_SCAN = 0.005
# Periodic (not urgent) checkpoints built in one pass of the loop, at most (_checkpoint_due).
PERIODIC_CHECKPOINTS = 2
WORKER_NICE = 10  # a worker process's niceness above the web process's (see worker_main)


class Worker:
    """The loop of one worker: serve calls, train running sessions, emit due frames."""

    def __init__(self, conn: Connection, checkpoint_seconds: float | None = None) -> None:
        self.conn = conn
        # None (or <= 0): no checkpoints (the web process has no storage).
        self.checkpoint_seconds = checkpoint_seconds if checkpoint_seconds else None
        self.runners: dict[str, Runner] = {}
        self.turn = 0
        self.stopping = False
        self.behind = False  # a paced session is late on its epochs: frames wait (see BEHIND)
        self.next_late_scan = 0.0  # when a round next looks for frames at their deadline
        self.round_seconds = 0.0  # wall time of the last round (a session's next turn is ~that far)
        self.outbox: list[tuple[str, FramePart]] = []  # frames not yet sent (see FRAME_BATCH)
        # Jobs (worker_jobs.py), which take turns in the rounds; what they work on (races,
        # replays) is kept by the op handlers, which serve the calls (worker_ops.py).
        self.jobs: dict[str, WorkerJob] = {}
        self.job_turn = 0  # which job takes the jobs' turn of the next round
        self.ops = WorkerOps(self)

    def serve_forever(self) -> None:
        """Run until ("stop",) arrives or the web side closes the pipe."""
        try:
            self.conn.send(("ready",))  # warmed up: restores may come here (restore.py)
            while not self.stopping:
                # Blocks while nothing is due: paced sessions waiting for their next epoch
                # cost no CPU until the earliest of them (or a frame, or a call) is due.
                self._serve_calls(self._wait_timeout())
                if self.stopping:
                    break
                self._train_round(self._ready())
                self.report_jobs()
                self._emit_idle_frames()
                self._checkpoint_due()
                self._flush_frames()
            self._checkpoint_due(final=True)  # a stop: nothing changed is left unstored
            self._flush_frames()
        except (EOFError, OSError, BrokenPipeError):
            pass  # the web process went away: nothing left to serve

    def _ready(self) -> list[Runner]:
        """The running sessions that may train now (paced ones only once an epoch is due)."""
        now = time.monotonic()
        return [r for r in self.runners.values() if r.session.is_training and r.due(now)]

    # ---- calls -----------------------------------------------------------------------------

    def _wait_timeout(self) -> float:
        """How long the loop may block: until the earliest due epoch or frame (0 if one is)."""
        due = [IDLE_POLL + time.monotonic()]
        if self._working_jobs():
            return 0.0
        for r in self.runners.values():
            if r.session.is_training:
                if not r.paced:
                    return 0.0
                due.append(r.next_epoch_at)
            if r.may_emit and r.dirty and self._frame_waits_for_clock(r):
                due.append(r.next_frame_at)
            if self.checkpoint_seconds is not None and r.checkpoint.dirty:
                due.append(r.checkpoint.next_at(self.checkpoint_seconds))
        return max(0.0, min(due) - time.monotonic())

    def _serve_calls(self, timeout: float) -> None:
        while self.conn.poll(timeout):
            message = self.conn.recv()
            timeout = 0.0
            if message[0] == "stop":
                self.stopping = True
                return
            if message[0] == "taken":
                for session_id in message[1]:
                    taken = self.runners.get(session_id)
                    if taken is not None:
                        taken.in_flight = max(0, taken.in_flight - 1)
                continue
            _, request_id, op, session_id, payload = message
            self.ops.answer(request_id, op, session_id, payload)

    def flush_replies(self, runner: Runner) -> None:
        """Answer the REST steps waiting on this session (it stopped training)."""
        if runner.waiting_replies:
            public = runner.session.public()
            for request_id in runner.waiting_replies:
                self.send(("reply", request_id, 200, public))
            runner.waiting_replies.clear()

    # ---- checkpoints (checkpointing.py) ----------------------------------------------------

    def checkpoint_now(self, session_id: str, force: bool = False) -> None:
        """Send this session's urgent checkpoint now (force: any pending change)."""
        runner = self.runners.get(session_id)
        if runner is None or self.checkpoint_seconds is None:
            return
        state = runner.checkpoint
        state.watch(runner.session)
        if state.dirty and (state.urgent or force):
            self._send_checkpoint(runner)

    def _checkpoint_due(self, final: bool = False) -> None:
        """Between slices: the sessions whose checkpoint is due (final: every changed one).

        Urgent ones all go at once; periodic ones at most PERIODIC_CHECKPOINTS per pass, the
        rest in the next passes: 50 sessions started together came due in the same pass every
        checkpoint_seconds, a burst of 50 builds here (~25-100 ms without a frame or a slice)
        and of 50 writes in the web process's writer thread at once.
        """
        if self.checkpoint_seconds is None:
            return
        now = time.monotonic()
        periodic = 0
        for runner in list(self.runners.values()):
            state = runner.checkpoint
            state.watch(runner.session)
            if final and state.dirty:
                self._send_checkpoint(runner)
            elif state.due(now, self.checkpoint_seconds):
                if not state.urgent:
                    if periodic >= PERIODIC_CHECKPOINTS:
                        continue
                    periodic += 1
                self._send_checkpoint(runner)

    def _send_checkpoint(self, runner: Runner) -> None:
        checkpoint = build_checkpoint(
            runner.session, runner.checkpoint, time.monotonic(), runner.timetravel
        )
        self.send(("checkpoint", checkpoint))

    # ---- jobs (worker_jobs.py) -------------------------------------------------------------

    def _working_jobs(self) -> list[WorkerJob]:
        return [j for j in self.jobs.values() if j.works and j.state == "running"]

    def report_jobs(self) -> None:
        """Progress of running jobs (each at most every PROGRESS_PERIOD) and ends (at once)."""
        if not self.jobs:
            return
        now = time.monotonic()
        for job_id, job in list(self.jobs.items()):
            job.check_deadline(now)
            if isinstance(job, StepJob):
                job.settle()
            if job.end is not None:
                del self.jobs[job_id]
                self.send(("job", job.public(), job.end, job.memory()))
            elif now - job.last_report >= PROGRESS_PERIOD:
                job.last_report = now
                self.send(("job", job.public(), None, job.memory()))

    # ---- training --------------------------------------------------------------------------

    def _train_round(self, ready: list[Runner]) -> None:
        """One turn for each session ready to train and one for the jobs, calls served between.

        A round, not one turn per pass of the loop: 100 paced sessions each due about every
        17 ms would otherwise make the loop rescan every session for every single epoch.
        Jobs (race steps, replays) take turns too, with the same CPU-time slice: all the jobs
        of this worker share one turn per round.
        """
        # The jobs of this worker share one turn per round (one at a time, in turn): batch work
        # takes one session's share, so 42 race steps do not make every session wait 42 turns.
        working = self._working_jobs()
        self.job_turn += 1
        jobs = [working[self.job_turn % len(working)]] if working else []
        turns: list[Runner | WorkerJob] = [*ready, *jobs]
        if not turns:
            self.behind = False
            return
        now = began = time.monotonic()
        self.behind = any(r.paced and now - r.next_epoch_at > BEHIND for r in ready)
        self.turn += 1
        start = self.turn % len(turns)  # a different session goes first each round
        for item in turns[start:] + turns[:start]:
            if isinstance(item, WorkerJob):
                if item.state == "running" and self.jobs.get(item.id) is item:
                    item.turn(time.thread_time() + self._slice(len(turns)))
                    self.report_jobs()
            elif self.runners.get(item.session.id) is item and item.session.is_training:
                self._train_turn(item, len(turns))
            if self.behind:
                self._emit_late_frames()
            if len(self.outbox) >= FRAME_BATCH:
                self._flush_frames()
            self._serve_calls(0.0)
            if self.stopping:
                return
        self.round_seconds = time.monotonic() - began

    def _emit_late_frames(self) -> None:
        """Between two turns of a round that is behind: the frames at their deadline (paced
        sessions with new epochs whose page waited FRAME_DEADLINE), before more epochs."""
        now = time.monotonic()
        if now < self.next_late_scan:
            return
        self.next_late_scan = now + LATE_FRAME_SCAN
        for runner in self.runners.values():
            if (runner.may_emit and runner.dirty and runner.paced and runner.next_frame_at
                    and now - runner.next_frame_at > self._frame_slack(runner)):
                self._emit(runner)

    def _train_turn(self, runner: Runner, running: int) -> None:
        session = runner.session
        # The slice is CPU time of this thread, not wall time: on a loaded machine a wall-clock
        # slice would shrink to nothing whenever we are descheduled, while frames kept their
        # wall-clock cadence, so frames would eat the training. Frames are still due by the clock.
        cpu_end = time.thread_time() + self._slice(running)
        now = time.monotonic()
        # Cut the slice when a frame falls due during it (one session: frames on time); one
        # already overdue is sent after the slice.
        due = runner.next_frame_at
        wall_end = due if runner.may_emit and due > now else math.inf
        record = runner.subscribers > 0 and session.config.lockstep
        paced = runner.paced
        # Behind on the epochs with this page's frame at its deadline (before the next turn):
        # one new epoch, then the frame, the rest of the slice to the other sessions' turns.
        frame_first = (paced and self.behind and runner.may_emit
                       and self._frame_due(runner, now, self.round_seconds))
        trained = 0
        while session.is_training and (not paced or runner.due(now)):
            session.train_one_epoch()
            trained += 1
            if paced:
                now = time.monotonic()
                runner.paced_epoch_done(now)
            if record:
                if runner.lockstep and runner.lockstep_history != session.history_id:
                    runner.lockstep.clear()
                if not runner.lockstep:
                    runner.lockstep_first = session.epoch
                    runner.lockstep_history = session.history_id
                runner.lockstep.append(flat_weights(session))
            if frame_first or time.thread_time() >= cpu_end or time.monotonic() >= wall_end:
                break
        if trained:
            runner.dirty = True
        if not session.is_training:
            # Stopped (a step done, finished, diverged): stored before a waiting step's reply.
            self.checkpoint_now(session.id)
            self.flush_replies(runner)
        # Its next turn comes about a round from now: a frame that would pass its deadline
        # by then goes now (with the epochs of this turn), so the page sees one per round.
        if runner.may_emit and self._frame_due(runner, time.monotonic(), self.round_seconds):
            self._emit(runner)

    @staticmethod
    def _slice(turns: int) -> float:
        """CPU seconds of one turn when `turns` sessions and jobs take turns."""
        return min(MAX_SLICE, max(MIN_SLICE, TURN_PERIOD / turns))

    def _emit_idle_frames(self) -> None:
        """Frames due by the clock alone: paused, paced, or right after a command."""
        now = time.monotonic()
        for runner in self.runners.values():
            if runner.may_emit and runner.dirty and self._frame_due(runner, now) and (
                self._frame_waits_for_clock(runner) or runner.next_frame_at == 0.0
            ):
                self._emit(runner)

    def _frame_due(self, runner: Runner, now: float, ahead: float = 0.0) -> bool:
        """Its interval has passed, and the epochs of paced sessions are on time (or it is
        a command's frame, or its deadline comes within `ahead` seconds: see FRAME_DEADLINE)."""
        due = runner.next_frame_at
        if now + EARLY < due:
            return False
        return not self.behind or due == 0.0 or now + ahead - due > self._frame_slack(runner)

    @staticmethod
    def _frame_slack(runner: Runner) -> float:
        """How long a due frame may wait for late epochs: its page still gets one at least
        every FRAME_DEADLINE (at frame_rate 30, 33 ms of cadence + 42 ms of slack)."""
        return max(0.0, FRAME_DEADLINE - 1.0 / runner.session.config.frame_rate)

    @staticmethod
    def _frame_waits_for_clock(runner: Runner) -> bool:
        """A session flat out sends its frames from its own turns; any other, when they fall due.

        A paced session's frame carries the epochs since the last one (two at speed 60 and 30
        frames/s); it is never sent without a new epoch or a command (`dirty`).
        """
        return not runner.session.is_training or runner.paced

    def _emit(self, runner: Runner) -> None:
        """Broadcast the rows since the last frame and the latest state to the web process."""
        session = runner.session
        if runner.sent_history_id != session.history_id:
            runner.sent_history_id, runner.sent_epoch = session.history_id, 0
        lockstep = None
        if runner.lockstep and runner.lockstep_history == session.history_id:
            lockstep = (runner.lockstep_first, np.stack(runner.lockstep))
            runner.lockstep = []
        part = preencode(build_part(session, runner.sent_epoch + 1, lockstep))
        runner.sent_epoch = session.epoch
        runner.dirty = False
        runner.in_flight += 1
        interval = 1.0 / session.config.frame_rate
        now = time.monotonic()
        due = runner.next_frame_at
        # Keep the cadence (due + interval) unless we fell a whole interval behind.
        runner.next_frame_at = due + interval if now - due < interval else now + interval
        self.outbox.append((session.id, part))

    def _flush_frames(self) -> None:
        if self.outbox:
            batch, self.outbox = self.outbox, []
            self.conn.send(("frames", batch))

    def send(self, message: tuple[Any, ...]) -> None:
        """Send a reply, after the frames queued before it (pipe order)."""
        self._flush_frames()
        self.conn.send(message)



def worker_main(conn: Connection, checkpoint_seconds: float | None = None) -> None:
    """Entry point of a worker process (or thread): load the compiled kernel, then serve.

    A worker process runs at a lower CPU priority (WORKER_NICE) than the web process: training
    is batch work, while the web process answers requests and sends frames, so with every core
    busy training (2 cores, 2 workers and 42 race steps) the event loop still gets a core the
    moment it has something to do.
    """
    if multiprocessing.current_process().name != "MainProcess":  # not a worker thread
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)
        # Ctrl-C reaches the whole process group: the web process stops its workers itself
        # (a worker dying of SIGINT first would look like a crash and be replaced mid-shutdown).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):  # no fast path just means the numpy path
        fast.warm_up()
    try:
        Worker(conn, checkpoint_seconds).serve_forever()
    finally:
        conn.close()  # the web side's reader sees EOF and ends
