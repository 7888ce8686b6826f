"""A worker owns many TrainingSessions and trains the running ones round-robin in short slices.

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
import json
import math
import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.classroom.tiles import class_tiles
from app.codegen.calls import code_call
from app.datasets import to_csv
from app.engine import fast
from app.instruments.checkpoints import attach
from app.instruments.race import Race, RaceCreate, start_race
from app.instruments.session_trace import trace_session
from app.instruments.timetravel import Replay, begin_replay
from app.runs.snapshot import SnapshotBuild, run_call
from app.sessions import bodies
from app.sessions.checkpointing import (
    CheckpointState,
    TimetravelDrain,
    build_checkpoint,
    restore_session,
)
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.export_binary import export_compact
from app.sessions.frame_builder import build_part, flat_weights
from app.sessions.frames import FramePart, preencode
from app.sessions.session import CommandRefused, TrainingSession
from app.sessions.worker_jobs import (
    PROGRESS_PERIOD,
    RaceStepJob,
    ReplayJob,
    RunSaveJob,
    StepJob,
    WorkerJob,
    estimate_replay_bytes,
    race_public,
)
from app.settings import get_settings

# A session's slice shrinks as more sessions run so each gets a turn ~25 times a CPU-second.
TURN_PERIOD = 0.04
MIN_SLICE = 0.001
MAX_SLICE = 0.02
IDLE_POLL = 0.5
# A paced session that fell behind (a slow or loaded machine) catches up at most this many
# seconds of epochs at once, instead of bursting through an unbounded debt.
CATCH_UP = 0.25
# A wake-up also trains the paced epochs (and sends the frames) due within this many seconds:
# 100 paced sessions would otherwise wake the loop for nearly every single epoch.
EARLY = 0.004
MAX_IN_FLIGHT = 1  # frames sent to the web process and not yet taken by a client, per session
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


@dataclass
class Runner:
    """A session plus what the worker tracks for streaming it."""

    session: TrainingSession
    subscribers: int = 0
    sent_epoch: int = 0  # the last epoch whose row went out in a broadcast frame
    sent_history_id: int = 0
    next_frame_at: float = 0.0
    dirty: bool = True
    waiting_replies: list[int] = field(default_factory=list)  # REST steps that reply when done
    lockstep: list[np.ndarray[Any, Any]] = field(default_factory=list)
    lockstep_first: int = 1
    lockstep_history: int = 0
    # The pace clock (config.speed): the speed it runs at and when the next epoch is due.
    pace_speed: float | None = None
    next_epoch_at: float = 0.0
    in_flight: int = 0  # frames the web process has not reported taken (flow control)
    # Sessions that last (checkpointing.py): what is stored, and time travel's new checkpoints.
    checkpoint: CheckpointState = field(default_factory=CheckpointState)
    timetravel: TimetravelDrain | None = None

    def __post_init__(self) -> None:
        # Time travel (issue 10): a live session records its past states (checkpoints.py);
        # each database checkpoint carries the ones added and dropped since the last.
        store = attach(self.session)
        if self.timetravel is None:
            self.timetravel = store.changes

    def restart_pace(self, now: float) -> None:
        """Start the pace clock again (play, step, a new speed): the next epoch is due now."""
        self.pace_speed, self.next_epoch_at = self.session.config.speed, now

    @property
    def paced(self) -> bool:
        """Whether this session trains at a pace (config.speed set) rather than flat out."""
        return self.session.config.speed is not None

    def due(self, now: float) -> bool:
        """Whether the session may train an epoch now (always, when it is not paced)."""
        return self.session.config.speed is None or now + EARLY >= self.next_epoch_at

    @property
    def may_emit(self) -> bool:
        """Someone watches and the previous frame was taken (flow control)."""
        return self.subscribers > 0 and self.in_flight < MAX_IN_FLIGHT

    def paced_epoch_done(self, now: float) -> None:
        """Book one paced epoch: the next one is due 1/speed later, with a bounded debt."""
        speed = self.session.config.speed
        assert speed is not None
        self.next_epoch_at = max(self.next_epoch_at + 1.0 / speed, now - CATCH_UP)


class WorkerError(Exception):
    """An error for the caller: HTTP status and a detail (a string or pydantic's error list)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def unprocessable(error: ValueError, *loc: str) -> WorkerError:
    """A ValueError as FastAPI's 422 shape, its field named by `loc`."""
    return WorkerError(422, [{"loc": list(loc), "msg": str(error), "type": "value_error"}])


def validation_detail(error: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as plain JSON (FastAPI's 422 shape, without exception objects)."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False)
    ]


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
        # Jobs and what they work on (worker_jobs.py): races by id, replays by session id.
        self.jobs: dict[str, WorkerJob] = {}
        self.job_turn = 0  # which job takes the jobs' turn of the next round
        self.races: dict[str, Race] = {}
        self.replays: dict[str, Replay] = {}

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
                self._report_jobs()
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
            try:
                result = self._call(request_id, op, session_id, payload)
            except WorkerError as error:
                self._send(("reply", request_id, error.status, error.detail))
                continue
            except ValidationError as error:
                self._send(("reply", request_id, 422, validation_detail(error)))
                continue
            except CommandRefused as error:
                self._send(("reply", request_id, 409, str(error)))
                continue
            except ValueError as error:
                self._send(("reply", request_id, 422, str(error)))
                continue
            except Exception:  # never let one bad call take the worker and its sessions down
                self._send(("reply", request_id, 500, traceback.format_exc(limit=3)))
                continue
            if op in CHANGING_OPS:
                self._checkpoint_now(session_id)  # before the reply: a pause is stored first
            if result is not _DEFERRED:
                self._send(("reply", request_id, 200, result))

    def _stop_jobs_of(self, target: str, why: str) -> None:
        """Cancel the jobs working on a session or race that is going away (404 results)."""
        for job in self.jobs.values():
            if job.target == target:
                job.stop("cancelled", why, 404)
        self._report_jobs()

    def _runner(self, session_id: str) -> Runner:
        runner = self.runners.get(session_id)
        if runner is None:
            raise WorkerError(404, f"session {session_id!r} not found")
        return runner

    def _call(self, request_id: int, op: str, session_id: str, payload: Any) -> Any:
        if op.startswith(("race_", "replay_", "job_")):
            return self._job_call(op, session_id, payload)
        payload = bodies.decode(op, payload)  # raw REST bodies are parsed here, off the loop
        if op == "create":
            session = TrainingSession(SessionConfig.model_validate(payload), session_id)
            self.runners[session_id] = Runner(session)
            return session.public()
        if op == "import":
            # Raw JSON bytes (the REST import) are parsed and validated here, off the event loop;
            # a dict (an export built by server code, e.g. a time-travel fork) is validated too.
            if isinstance(payload, bytes | str):
                data = SessionExport.model_validate_json(payload)
            else:
                data = SessionExport.model_validate(payload)
            session = import_session(data, session_id)
            self.runners[session_id] = Runner(session)
            return session.public()
        if op == "restore":  # a stored session comes back, paused (checkpointing.py)
            return self._restore(session_id, payload)
        if op == "run":  # a saved run's record or view (app/runs/snapshot.py)
            found = self.runners.get(session_id)
            if found is not None and payload.get("kind") == "snapshot":
                return self._start_run_save(request_id, found.session, payload)
            try:
                return run_call(found.session if found else None, payload)
            except LookupError:
                raise WorkerError(404, f"session {session_id!r} not found") from None
        if op == "code":  # an exported script's recipe (app/codegen/calls.py)
            found = self.runners.get(session_id)
            try:
                return code_call(found.session if found else None, payload)
            except LookupError:
                raise WorkerError(404, f"session {session_id!r} not found") from None
        if op == "class_tiles":  # a classroom's low-res boundaries (app/classroom/tiles.py)
            return class_tiles({s: r.session for s, r in self.runners.items()}, payload)
        runner = self._runner(session_id)
        session = runner.session
        if op == "get":
            return session.public()
        if op == "checkpoint_whole":  # the writer dropped one: the next carries every row
            runner.checkpoint.history_id = -1
            runner.checkpoint.touch(urgent=True)
            return None
        if op == "evict":  # idle expiry: stored (its last checkpoint first), then forgotten
            self._checkpoint_now(session_id, force=True)
            op = "delete"
        if op == "delete":
            self._flush_replies(runner)
            self._stop_jobs_of(session_id, f"session {session_id!r} was deleted")
            self.replays.pop(session_id, None)
            del self.runners[session_id]
            return None
        if op == "export":
            return export_session(session)
        if op == "export_json":
            return json.dumps(export_session(session), allow_nan=False).encode()
        if op == "export_compact":  # gzip'd, history as binary columns (export_binary.py)
            return export_compact(session)
        if op == "data_csv":
            dataset = session.data.dataset
            return to_csv(
                np.concatenate([dataset.x_train, dataset.x_test]),
                np.concatenate([dataset.y_train, dataset.y_test]),
            )
        if op == "predict":
            return session.predict(payload)
        if op == "trace":
            return trace_session(
                session, "session", payload["batch_start"], payload["batch_size"],
                payload["training"], payload["numeric"],
            )
        if op == "subscribe":
            if runner.subscribers == 0:
                # Nobody had the rows since the last broadcast; the first frame carries them all.
                runner.sent_epoch, runner.sent_history_id = session.epoch, session.history_id
                runner.dirty = False  # the first frame below is the state now: nothing to resend
                runner.in_flight = 0
            runner.subscribers += 1
            return {"session": session.public(), "part": self._initial_part(runner)}
        if op == "unsubscribe":
            runner.subscribers = max(0, runner.subscribers - 1)
            if runner.subscribers == 0:
                runner.in_flight = 0  # a frame left in a closed client's slot is never taken
            return None
        if op == "update":
            session.update(payload)
            runner.checkpoint.touch(urgent=True)
            return self._after_command(runner)
        if op == "command":
            return self._command(request_id, runner, payload)
        raise WorkerError(400, f"unknown operation {op!r}")

    def _command(self, request_id: int, runner: Runner, command: dict[str, Any]) -> Any:
        session = runner.session
        kind = command["type"]
        refusal = command.get("run_quota")  # set by the manager when the owner is at its quota
        if refusal and kind in ("play", "step") and not session.is_training:
            raise WorkerError(429, refusal)
        if kind == "play":
            session.play()
            runner.restart_pace(time.monotonic())
        elif kind == "pause":
            session.pause()
            runner.checkpoint.touch(urgent=True)
        elif kind == "step":
            n = command.get("n", 1)
            if command.get("wait") or command.get("job"):
                self._check_waiting_step(session, n)
            if command.get("job") and command.get("job_quota"):
                raise WorkerError(429, command["job_quota"])
            session.step(n)
            runner.restart_pace(time.monotonic())
            if command.get("job"):
                return self._start_step_job(runner, command, n)
            if command.get("wait"):
                runner.waiting_replies.append(request_id)
                runner.dirty = True
                return _DEFERRED
        elif kind == "reset":
            session.reset(bool(command.get("same_start", False)))
            runner.checkpoint.touch(urgent=True)
        elif kind == "regenerate":
            session.regenerate(command.get("seed"))
            runner.checkpoint.touch(urgent=True)
        elif kind == "set":
            session.update(command["config"])
            runner.checkpoint.touch(urgent=True)
        elif kind == "edit_weight":
            session.edit_weight(
                command["layer"], command["param"], list(command["index"]), command["value"]
            )
            runner.checkpoint.touch(urgent=True)
        elif kind == "predict":
            return {"outputs": session.predict(command["points"])}
        else:
            raise WorkerError(422, f"unknown command {kind!r}")
        return self._after_command(runner)

    @staticmethod
    def _check_waiting_step(session: TrainingSession, n: Any) -> None:
        """A REST step answers when done: refuse one its pace makes outlast the call's timeout."""
        speed, limit = session.config.speed, get_settings().command_timeout_seconds
        if speed is None or not isinstance(n, int) or n / speed <= limit:
            return
        raise WorkerError(422, (
            f"step n = {n} at speed = {speed:g} epochs/s takes {n / speed:.0f} s, longer than "
            f"command_timeout_seconds = {limit:g} that a REST step may wait; step at most "
            f"{int(limit * speed)} epochs, raise speed (null = max), or send the step over the "
            "websocket, which does not wait"
        ))

    def _after_command(self, runner: Runner) -> dict[str, Any]:
        if runner.pace_speed != runner.session.config.speed:
            runner.restart_pace(time.monotonic())  # a new speed counts from now
        runner.dirty = True
        runner.next_frame_at = 0.0  # show the effect of a command at once
        if not runner.session.is_training:
            self._flush_replies(runner)
        return runner.session.public()

    def _flush_replies(self, runner: Runner) -> None:
        """Answer the REST steps waiting on this session (it stopped training)."""
        if runner.waiting_replies:
            public = runner.session.public()
            for request_id in runner.waiting_replies:
                self._send(("reply", request_id, 200, public))
            runner.waiting_replies.clear()

    # ---- checkpoints (checkpointing.py) ----------------------------------------------------

    def _restore(self, session_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Build a stored session from its checkpoint, paused; what is stored is clean."""
        if session_id in self.runners:
            raise WorkerError(409, f"session {session_id!r} is already live")
        session = restore_session(
            session_id, payload["snapshot"], list(payload["history_columns"]), payload["history"]
        )
        runner = Runner(session)
        if session.timetravel is not None:  # its stored time-travel checkpoints (H3)
            session.timetravel.load(payload.get("timetravel") or [])
        state = runner.checkpoint
        state.stored_epoch, state.history_id, state.status = (
            session.epoch, session.history_id, session.status
        )
        # Stored as it was: only a new change (or the status, if it was running) is sent.
        state.dirty = state.urgent = payload.get("status") == "running"
        state.last_at = time.monotonic()
        self.runners[session_id] = runner
        return session.public()

    def _checkpoint_now(self, session_id: str, force: bool = False) -> None:
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
        self._send(("checkpoint", checkpoint))

    # ---- jobs (worker_jobs.py) -------------------------------------------------------------

    def _job_call(self, op: str, target: str, payload: Any) -> Any:
        """Races, replays and jobs: `target` is a race id, a session id or a job id."""
        if op == "race_create":
            # The raw body (RaceCreate) is parsed and validated here, off the event loop.
            body = RaceCreate.model_validate_json(payload[bodies.RAW])
            racers = [r.model_dump(exclude_none=True) for r in body.racers]
            try:
                race = start_race(body.config, racers)
            except ValueError as error:
                raise unprocessable(error, "racers") from None
            size = race.nbytes()
            if size > payload["memory_left"]:
                raise WorkerError(429, f"a race of ~{size} bytes does not fit: "
                                  f"{payload['memory_limit']}")
            self.races[target] = race
            return {"body": race_public(target, race, 1, True), "bytes": size}
        if op == "race_get":
            race = self._race(target)
            return {"body": race_public(target, race, 1, True), "bytes": race.nbytes()}
        if op == "race_delete":
            self._race(target)
            self._stop_jobs_of(target, f"race {target!r} was deleted")
            del self.races[target]
            return None
        if op == "race_step":
            race = self._race(target)
            self._refuse_second_job(target, "race_step")
            try:
                first = race.begin_step(payload["epochs"])
            except ValueError as error:
                raise unprocessable(error, "body", "epochs") from None
            return self._add_job(RaceStepJob(
                **self._job_fields(payload, "race_step", target),
                race=race, first=first, epochs=payload["epochs"], grids=payload["grids"],
            ))
        if op == "replay_start":
            live = self._runner(target).session
            self._refuse_second_job(target, "replay")
            try:
                run = begin_replay(live, self.replays.get(target))
            except ValueError as error:
                raise unprocessable(error, "path", "session_id") from None
            size = estimate_replay_bytes(run)
            if size > payload["memory_left"]:
                raise WorkerError(429, f"a replay of ~{size} bytes does not fit: "
                                  f"{payload['memory_limit']}")
            return self._add_job(ReplayJob(
                **self._job_fields(payload, "replay", target), run=run, replays=self.replays,
            ))
        if op == "job_cancel":
            running = self.jobs.get(target)
            if running is None:
                raise WorkerError(404, f"job {target!r} is not running")
            running.stop("cancelled", f"job {target} was cancelled after {running.done} of "
                         f"{running.total}", 409)
            public = running.public()
            self._report_jobs()
            return public
        replayed = self.replays.get(target)
        if replayed is None or target not in self.runners:
            raise WorkerError(404, f"no replay of session {target!r}: POST /api/sessions/"
                              f"{target}/timetravel first")
        if op == "replay_summary":
            return replayed.summary_json()
        if op == "replay_frame":
            return replayed.frame_at(payload)
        if op == "replay_fork":
            try:
                return replayed.fork_export(payload["epoch"], payload["config"])
            except ValueError as error:
                raise unprocessable(error, "body", "config") from None
        raise WorkerError(400, f"unknown operation {op!r}")

    def _race(self, race_id: str) -> Race:
        race = self.races.get(race_id)
        if race is None:
            raise WorkerError(404, f"race {race_id!r} not found")
        return race

    def _refuse_second_job(self, target: str, kind: str) -> None:
        for job in self.jobs.values():
            if job.target == target and job.kind == kind and job.state == "running":
                raise WorkerError(409, f"{target!r} already runs {kind} job {job.id}; wait for "
                                  f"it (GET /api/jobs/{job.id}) or cancel it")

    @staticmethod
    def _job_fields(payload: dict[str, Any], kind: str, target: str) -> dict[str, Any]:
        limit = float(payload["max_seconds"])
        return {"id": payload["job"], "kind": kind, "target": target,
                "deadline": time.monotonic() + limit, "limit_seconds": limit}

    def _add_job(self, job: WorkerJob) -> dict[str, Any]:
        """Register a job; the reply is {"job": JobPublic} (as the 202 body)."""
        self.jobs[job.id] = job
        return {"job": job.public()}

    def _start_run_save(
        self, request_id: int, session: TrainingSession, payload: dict[str, Any]
    ) -> Any:
        """A run's record as a job (RunSaveJob): the state taken now, its JSON written in the
        jobs' turns; the reply goes out when it is done."""
        build = SnapshotBuild(session, payload["thumbnail_size"], payload["extent"])
        limit = float(payload.get("max_seconds", 600.0))

        def reply(status: int, body: Any) -> None:
            self._send(("reply", request_id, status, body))

        job_id = f"run-save-{request_id}"
        self.jobs[job_id] = RunSaveJob(
            id=job_id, kind="run_save", target=session.id,
            deadline=time.monotonic() + limit, limit_seconds=limit, build=build, reply=reply,
        )
        return _DEFERRED

    def _start_step_job(self, runner: Runner, command: dict[str, Any], n: int) -> Any:
        session = runner.session
        job = StepJob(
            **self._job_fields(command, "step", session.id), runner=runner,
            start_epoch=session.epoch, history_id=session.history_id, n=n,
        )
        runner.dirty = True
        runner.next_frame_at = 0.0
        return self._add_job(job)

    def _working_jobs(self) -> list[WorkerJob]:
        return [j for j in self.jobs.values() if j.works and j.state == "running"]

    def _report_jobs(self) -> None:
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
                self._send(("job", job.public(), job.end, job.memory()))
            elif now - job.last_report >= PROGRESS_PERIOD:
                job.last_report = now
                self._send(("job", job.public(), None, job.memory()))

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
                    self._report_jobs()
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
            self._checkpoint_now(session.id)
            self._flush_replies(runner)
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

    def _initial_part(self, runner: Runner) -> FramePart:
        """A new subscriber's first frame: the whole history (capped) and the state now."""
        session = runner.session
        first = max(1, session.epoch - get_settings().max_history_in_hello + 1)
        return preencode(build_part(session, first))

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

    def _send(self, message: tuple[Any, ...]) -> None:
        """Send a reply, after the frames queued before it (pipe order)."""
        self._flush_frames()
        self.conn.send(message)


_DEFERRED = object()
# Calls after which a session's urgent checkpoint goes out before the reply.
CHANGING_OPS = frozenset({"create", "import", "update", "command"})


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
