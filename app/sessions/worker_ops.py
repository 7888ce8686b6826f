"""The operations a worker runs for its calls: create, import, restore, get, update, command,
subscribe, export, delete and the rest on its sessions, and races, replays and jobs.

`WorkerOps.answer` runs one ("call", ...) message of the pipe and sends its reply (a refused call
as its HTTP status and detail). The loop that serves calls between training slices, and what the
ops share with it (the runners, the jobs, the pipe), is the worker's (app/sessions/worker.py).
"""

from __future__ import annotations

import json
import time
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from app.classroom.tiles import class_tiles
from app.codegen.calls import code_call
from app.datasets import to_csv
from app.instruments.race import Race, RaceCreate, start_race
from app.instruments.session_trace import trace_session
from app.instruments.timetravel import Replay, begin_replay
from app.runs.snapshot import SnapshotBuild, run_call
from app.sessions import bodies
from app.sessions.checkpointing import restore_session
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.export_binary import export_compact
from app.sessions.frame_builder import build_part
from app.sessions.frames import FramePart, preencode
from app.sessions.runner import Runner
from app.sessions.session import CommandRefused, TrainingSession
from app.sessions.worker_jobs import (
    RaceStepJob,
    ReplayJob,
    RunSaveJob,
    StepJob,
    WorkerJob,
    estimate_replay_bytes,
    race_public,
)
from app.settings import get_settings

if TYPE_CHECKING:
    from app.sessions.worker import Worker

# Calls after which a session's urgent checkpoint goes out before the reply.
CHANGING_OPS = frozenset({"create", "import", "update", "command"})
DEFERRED = object()  # a call's result when its reply goes out later (a waiting step, a run save)


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


class WorkerOps:
    """The op handlers of one worker, over the runners and jobs its loop schedules."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        # What jobs work on (worker_jobs.py): races by id, replays by session id.
        self.races: dict[str, Race] = {}
        self.replays: dict[str, Replay] = {}

    def answer(self, request_id: int, op: str, session_id: str, payload: Any) -> None:
        """Run one call and send its reply (after the urgent checkpoint of a changing op)."""
        send = self.worker.send
        try:
            result = self.call(request_id, op, session_id, payload)
        except WorkerError as error:
            send(("reply", request_id, error.status, error.detail))
            return
        except ValidationError as error:
            send(("reply", request_id, 422, validation_detail(error)))
            return
        except CommandRefused as error:
            send(("reply", request_id, 409, str(error)))
            return
        except ValueError as error:
            send(("reply", request_id, 422, str(error)))
            return
        except Exception:  # never let one bad call take the worker and its sessions down
            send(("reply", request_id, 500, traceback.format_exc(limit=3)))
            return
        if op in CHANGING_OPS:
            self.worker.checkpoint_now(session_id)  # before the reply: a pause is stored first
        if result is not DEFERRED:
            send(("reply", request_id, 200, result))

    def call(self, request_id: int, op: str, session_id: str, payload: Any) -> Any:
        """One op's result (DEFERRED: its reply goes out later); refusals raise WorkerError."""
        if op.startswith(("race_", "replay_", "job_")):
            return self._job_call(op, session_id, payload)
        payload = bodies.decode(op, payload)  # raw REST bodies are parsed here, off the loop
        if op == "create":
            session = TrainingSession(SessionConfig.model_validate(payload), session_id)
            self.worker.runners[session_id] = Runner(session)
            return session.public()
        if op == "import":
            # Raw JSON bytes (the REST import) are parsed and validated here, off the event loop;
            # a dict (an export built by server code, e.g. a time-travel fork) is validated too.
            if isinstance(payload, bytes | str):
                data = SessionExport.model_validate_json(payload)
            else:
                data = SessionExport.model_validate(payload)
            session = import_session(data, session_id)
            self.worker.runners[session_id] = Runner(session)
            return session.public()
        if op == "restore":  # a stored session comes back, paused (checkpointing.py)
            return self._restore(session_id, payload)
        if op == "run":  # a saved run's record or view (app/runs/snapshot.py)
            found = self.worker.runners.get(session_id)
            if found is not None and payload.get("kind") == "snapshot":
                return self._start_run_save(request_id, found.session, payload)
            try:
                return run_call(found.session if found else None, payload)
            except LookupError:
                raise WorkerError(404, f"session {session_id!r} not found") from None
        if op == "code":  # an exported script's recipe (app/codegen/calls.py)
            found = self.worker.runners.get(session_id)
            try:
                return code_call(found.session if found else None, payload)
            except LookupError:
                raise WorkerError(404, f"session {session_id!r} not found") from None
        if op == "class_tiles":  # a classroom's low-res boundaries (app/classroom/tiles.py)
            return class_tiles({s: r.session for s, r in self.worker.runners.items()}, payload)
        runner = self._runner(session_id)
        session = runner.session
        if op == "get":
            return session.public()
        if op == "checkpoint_whole":  # the writer dropped one: the next carries every row
            runner.checkpoint.history_id = -1
            runner.checkpoint.touch(urgent=True)
            return None
        if op == "evict":  # idle expiry: stored (its last checkpoint first), then forgotten
            self.worker.checkpoint_now(session_id, force=True)
            op = "delete"
        if op == "delete":
            self.worker.flush_replies(runner)
            self._stop_jobs_of(session_id, f"session {session_id!r} was deleted")
            self.replays.pop(session_id, None)
            del self.worker.runners[session_id]
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
                return DEFERRED
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
            self.worker.flush_replies(runner)
        return runner.session.public()

    def _restore(self, session_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Build a stored session from its checkpoint, paused; what is stored is clean."""
        if session_id in self.worker.runners:
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
        self.worker.runners[session_id] = runner
        return session.public()

    def _initial_part(self, runner: Runner) -> FramePart:
        """A new subscriber's first frame: the whole history (capped) and the state now."""
        session = runner.session
        first = max(1, session.epoch - get_settings().max_history_in_hello + 1)
        return preencode(build_part(session, first))

    def _runner(self, session_id: str) -> Runner:
        runner = self.worker.runners.get(session_id)
        if runner is None:
            raise WorkerError(404, f"session {session_id!r} not found")
        return runner

    def _stop_jobs_of(self, target: str, why: str) -> None:
        """Cancel the jobs working on a session or race that is going away (404 results)."""
        for job in self.worker.jobs.values():
            if job.target == target:
                job.stop("cancelled", why, 404)
        self.worker.report_jobs()

    # ---- races, replays and jobs (worker_jobs.py) ------------------------------------------

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
            running = self.worker.jobs.get(target)
            if running is None:
                raise WorkerError(404, f"job {target!r} is not running")
            running.stop("cancelled", f"job {target} was cancelled after {running.done} of "
                         f"{running.total}", 409)
            public = running.public()
            self.worker.report_jobs()
            return public
        replayed = self.replays.get(target)
        if replayed is None or target not in self.worker.runners:
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
        for job in self.worker.jobs.values():
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
        self.worker.jobs[job.id] = job
        return {"job": job.public()}

    def _start_run_save(
        self, request_id: int, session: TrainingSession, payload: dict[str, Any]
    ) -> Any:
        """A run's record as a job (RunSaveJob): the state taken now, its JSON written in the
        jobs' turns; the reply goes out when it is done."""
        build = SnapshotBuild(session, payload["thumbnail_size"], payload["extent"])
        limit = float(payload.get("max_seconds", 600.0))

        def reply(status: int, body: Any) -> None:
            self.worker.send(("reply", request_id, status, body))

        job_id = f"run-save-{request_id}"
        self.worker.jobs[job_id] = RunSaveJob(
            id=job_id, kind="run_save", target=session.id,
            deadline=time.monotonic() + limit, limit_seconds=limit, build=build, reply=reply,
        )
        return DEFERRED

    def _start_step_job(self, runner: Runner, command: dict[str, Any], n: int) -> Any:
        session = runner.session
        job = StepJob(
            **self._job_fields(command, "step", session.id), runner=runner,
            start_epoch=session.epoch, history_id=session.history_id, n=n,
        )
        runner.dirty = True
        runner.next_frame_at = 0.0
        return self._add_job(job)
