"""The worker's side of jobs: race steps, time-travel replays and REST steps.

A job is work that may outlast a request (issue 9). It lives in the worker that holds its target
(a race, or the session being replayed or stepped) and is trained there in the same round-robin
CPU-time slices as the sessions (worker.py `_train_round`): a race step trains one racer one
epoch per unit, a replay one epoch per unit, and a REST step is the session's own training,
which the job only watches. Races and replays live in the worker too, so the web process never
trains and never holds their memory; each reports its bytes with every job message, and the web
process (app/sessions/jobs.py) checks the per-owner and total budgets before new work starts.

Job messages, worker -> web: ("job", JobPublic, end, memory), where `end` is None for progress
(at most every PROGRESS_PERIOD seconds) and (status, body) once the job ended: the answer the
route would have given (status 200, body a JSON-ready value or JSON bytes) or an error (status,
detail). `memory` is ("race" | "replay", key, bytes) or None.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.instruments.race import Race, session_bytes
from app.instruments.timetravel import Replay, ReplayRun
from app.runs.snapshot import SnapshotBuild

if TYPE_CHECKING:
    from app.sessions.worker import Runner

PROGRESS_PERIOD = 0.25  # seconds between two progress messages of one job (<= 4/s)


def race_public(race_id: str, race: Race, since: int, grids: bool) -> bytes:
    """A race's answer (RacePublic) as JSON bytes, built here so the web process only sends it."""
    body = {
        "id": race_id,
        "epoch": race.epoch,
        "first_epoch": since,
        "racers": race.curves(since),
        "grids": race.grids() if grids else None,
    }
    return json.dumps(body, allow_nan=False).encode()


@dataclass(eq=False)
class WorkerJob:
    """What every job has: who it is, its state and progress, its deadline and its answer."""

    id: str
    kind: str
    target: str
    deadline: float  # time.monotonic() after which the job is stopped (max_job_seconds)
    limit_seconds: float
    state: str = "running"
    detail: str | None = None
    last_report: float = field(default_factory=time.monotonic)
    end: tuple[int, Any] | None = None

    @property
    def done(self) -> int:
        """Units done (epochs)."""
        return 0

    @property
    def total(self) -> int:
        """Units to do."""
        return 0

    @property
    def works(self) -> bool:
        """Whether the job takes turns of its own in the round (a REST step does not)."""
        return True

    def public(self) -> dict[str, Any]:
        """JobPublic (docs/protocol.md "Jobs")."""
        return {
            "id": self.id, "kind": self.kind, "target": self.target, "state": self.state,
            "done": self.done, "total": self.total, "detail": self.detail,
        }

    def turn(self, cpu_end: float) -> None:
        """Work until `cpu_end` (thread CPU time) or the end; at least one unit."""

    def memory(self) -> tuple[str, str, int] | None:
        """What the job's target holds now, for the budgets."""
        return None

    def stop(self, state: str, detail: str, status: int) -> None:
        """End the job early (cancelled, timed out, its target removed)."""
        if self.state != "running":
            return
        self._halt()
        self.state, self.detail = state, detail
        self.end = (status, detail)

    def _halt(self) -> None:
        """Leave the target consistent when the job stops early."""

    def check_deadline(self, now: float) -> None:
        """Stop a job that ran longer than max_job_seconds."""
        if self.state == "running" and now > self.deadline:
            self.stop(
                "failed", f"job {self.id} ran longer than max_job_seconds = "
                f"{self.limit_seconds:g}; it did {self.done} of {self.total}", 504,
            )


@dataclass(eq=False)
class RaceStepJob(WorkerJob):
    """`epochs` more epochs of every racer, one racer-epoch per unit of work."""

    race: Race | None = None
    first: int = 1
    epochs: int = 0
    grids: bool = True

    stopped_at: int | None = None  # epochs done when the job was stopped early

    @property
    def done(self) -> int:
        assert self.race is not None
        if self.stopped_at is not None:
            return self.stopped_at
        return self.epochs - min(self.epochs, self.race.epochs_left)

    @property
    def total(self) -> int:
        return self.epochs

    def turn(self, cpu_end: float) -> None:
        race = self.race
        assert race is not None
        while True:
            if race.advance():
                self.state = "done"
                self.end = (200, race_public(self.target, race, self.first, self.grids))
                return
            if time.thread_time() >= cpu_end:
                return

    def memory(self) -> tuple[str, str, int] | None:
        assert self.race is not None
        return ("race", self.target, self.race.nbytes())

    def _halt(self) -> None:
        assert self.race is not None
        self.stopped_at = self.done
        self.race.stop_step()


@dataclass(eq=False)
class ReplayJob(WorkerJob):
    """Opening a session's time-travel view: its recorded checkpoints, so done in one turn
    (kept a job so the route and its budgets stay as they were when this was a replay)."""

    run: ReplayRun | None = None
    replays: dict[str, Replay] = field(default_factory=dict)  # the worker's, to store it in

    @property
    def done(self) -> int:
        assert self.run is not None
        return self.run.done

    @property
    def total(self) -> int:
        assert self.run is not None
        return self.run.total

    def turn(self, cpu_end: float) -> None:
        run = self.run
        assert run is not None
        while True:
            if run.advance():
                replayed = run.finish()
                self.replays[self.target] = replayed
                self.state = "done"
                self.end = (200, replayed.summary_json())
                return
            if time.thread_time() >= cpu_end:
                return

    def memory(self) -> tuple[str, str, int] | None:
        assert self.run is not None
        if self.state == "running":
            return ("replay", self.target, self.run.nbytes())
        kept = self.replays.get(self.target)  # 0: a new replay stopped early keeps nothing
        return ("replay", self.target, kept.nbytes() if kept is not None else 0)


@dataclass(eq=False)
class RunSaveJob(WorkerJob):
    """A run's record (POST /api/sessions/{id}/runs, app/runs/snapshot.py SnapshotBuild) built
    in the jobs' turns: the state was taken when the op arrived, the history's JSON is written
    a slice at a time, so the worker's other sessions keep training (a 100,000-epoch run took
    ~1.7 s of one worker inline). Not a REST job: the op's caller waits for its reply, which
    `reply(status, body)` sends when the record is done (or the job stopped: the session
    deleted, 404; max_job_seconds passed, 504)."""

    build: SnapshotBuild | None = None
    reply: Callable[[int, Any], None] | None = None
    units: tuple[int, int] = (0, 0)  # (done, total) when the build was let go

    @property
    def done(self) -> int:
        return self.build.units_done if self.build is not None else self.units[0]

    @property
    def total(self) -> int:
        return self.build.total if self.build is not None else self.units[1]

    def turn(self, cpu_end: float) -> None:
        build, reply = self.build, self.reply
        assert build is not None and reply is not None
        if build.advance(cpu_end):
            self.state = "done"
            self.end = (200, None)  # the record goes in the reply, not in the job message
            self.units = (build.units_done, build.total)
            self.build = None  # the copy of the history and the JSON go with the reply
            reply(200, build.result())

    def stop(self, state: str, detail: str, status: int) -> None:
        running = self.state == "running"
        super().stop(state, detail, status)
        if running and self.reply is not None:
            if self.build is not None:
                self.units = (self.build.units_done, self.build.total)
                self.build = None
            self.reply(status, detail)


@dataclass(eq=False)
class StepJob(WorkerJob):
    """A REST `step` of n epochs: the session trains it in its own turns; the job watches."""

    runner: Runner | None = None
    start_epoch: int = 0
    history_id: int = 0
    n: int = 0

    @property
    def done(self) -> int:
        assert self.runner is not None
        session = self.runner.session
        if session.history_id != self.history_id:  # reset or rebuilt meanwhile
            return self.n if not session.is_training else 0
        return max(0, min(self.n, session.epoch - self.start_epoch))

    @property
    def total(self) -> int:
        return self.n

    @property
    def works(self) -> bool:
        return False

    def settle(self) -> None:
        """The session stopped training: the step is over (done, interrupted, or diverged)."""
        assert self.runner is not None
        if self.state == "running" and not self.runner.session.is_training:
            self.state = "done"
            self.end = (200, self.runner.session.public())

    def _halt(self) -> None:
        assert self.runner is not None
        self.runner.session.pause()
        # Watchers see the pause at once (a frame now, as after any command), not a stale
        # "running" until something else changes.
        self.runner.dirty = True
        self.runner.next_frame_at = 0.0


def estimate_replay_bytes(run: ReplayRun) -> int:
    """The most a time-travel view may hold: a scratch session to draw past epochs' frames
    (the checkpoints themselves are the live session's recording, bounded per session)."""
    return session_bytes(run.session)
