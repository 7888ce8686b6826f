"""The web process's side of jobs, races and replays (docs/protocol.md "Jobs").

Work that may take over ~1 s (a race step, a time-travel replay, a REST `step`) is a job: it runs
in a worker (app/sessions/worker_jobs.py), trained in the same slices as the sessions, and the
route waits `job_wait_seconds` for it: done -> the usual answer, else 202 `{"job": JobPublic}`
with `Location: /api/jobs/{id}`. Races live on the least-loaded worker (this board keeps the
race -> worker map and each race's and replay's owner and bytes), replays on the worker of their
session. Who may start one is decided by app/sessions/job_budgets.py. Nothing here trains or
builds an answer: replies come from the workers ready to send.

With a shared backend (ray: many web replicas) a job is readable through every replica (a
replica learns other replicas' jobs from the shards' messages: app/sessions/foreign_jobs.py),
and a replica asked for a race it does not hold finds it in the directory (`find_race`). Races
are not expired by a replica there (another may be using it): they live until deleted, as
sessions do.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.sessions.foreign_jobs import ForeignJobs
from app.sessions.job_budgets import DirectoryBudgets, LocalBudgets, refusal

if TYPE_CHECKING:
    from app.sessions.manager import SessionCallError, SessionManager
    from app.sessions.worker_link import WorkerHandle
    from app.settings import Settings

MAX_ENDED_JOBS = 10_000  # ended jobs kept readable at most (the oldest go first)


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> SessionCallError:
    from app.sessions.manager import SessionCallError  # a cycle at import time otherwise

    return SessionCallError(status, detail, headers)


@dataclass(eq=False)
class JobRecord:
    """A job as the web process knows it: its last JobPublic and, once ended, its answer."""

    id: str
    kind: str
    target: str
    owner: str
    worker: WorkerHandle
    public: dict[str, Any]
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end: tuple[int, Any] | None = None  # (status, body or detail), as the route would answer
    ended_at: float = 0.0
    foreign: bool = False  # started through another replica (shared backends)
    incarnation: Any = None  # its worker's when it started (a ray shard: a restart changes it)

    def __post_init__(self) -> None:
        self.incarnation = getattr(self.worker, "incarnation", None)

    @property
    def running(self) -> bool:
        """Not ended yet (and its worker still there)."""
        return self.end is None

    def finish(self, public: dict[str, Any], end: tuple[int, Any]) -> None:
        """Record the end (once)."""
        if self.end is None:
            self.public, self.end, self.ended_at = public, end, time.monotonic()
            self.ended.set()


@dataclass(eq=False)
class Holding:
    """A race or a replay: who owns it, where it lives, the bytes it last reported."""

    owner: str
    worker: WorkerHandle
    nbytes: int
    last_active: float = field(default_factory=time.monotonic)


class JobBoard:
    """Jobs by id, races by id, replays by session id; budgets; progress to subscribers."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.jobs: dict[str, JobRecord] = {}
        self.races: dict[str, Holding] = {}
        self.replays: dict[str, Holding] = {}
        self.foreign = ForeignJobs(self)  # other replicas' jobs (shared backends)
        self.local_budgets = LocalBudgets(self)
        self.directory_budgets: DirectoryBudgets | None = None

    @property
    def settings(self) -> Settings:
        """The manager's settings."""
        return self.manager.settings

    # ---- worker messages -------------------------------------------------------------------

    def on_message(self, message: tuple[Any, ...]) -> None:
        """("job", JobPublic, end, memory) from a worker (runs on the event loop)."""
        _, public, end, memory = message
        if memory is not None:
            kind, key, nbytes = memory
            table = self.races if kind == "race" else self.replays
            holding = table.get(key)
            if holding is not None:
                if nbytes:
                    holding.nbytes = nbytes
                else:
                    del table[key]  # a new replay that was cancelled: nothing is kept
        record = self.jobs.get(public["id"])
        if record is None:
            self.foreign.learn(public, end)
            return
        if end is None:
            record.public = public
        else:
            record.finish(public, end)
            self.budgets.job_ended(record)
            if record.foreign:
                self.foreign.bound_ends()
            if record.kind == "step":
                handle = self.manager.handles.get(record.target)
                if handle is not None and isinstance(end[1], dict):
                    handle.status = str(end[1].get("status", handle.status))
        self.tell_subscribers(record)

    # ---- the directory (shared backends) ------------------------------------------------------

    @property
    def directory(self) -> Any:
        """The shared backend's directory actor, or None (the local backend has none)."""
        return getattr(self.manager.backend, "directory", None)

    @property
    def budgets(self) -> LocalBudgets:
        """Who may start a job, a race or a replay (app/sessions/job_budgets.py): the
        directory on a shared backend, this board's records otherwise."""
        directory = self.directory
        if directory is None:
            return self.local_budgets
        if self.directory_budgets is None or self.directory_budgets.directory is not directory:
            self.directory_budgets = DirectoryBudgets(self, directory)
        return self.directory_budgets

    def tell_subscribers(self, record: JobRecord) -> None:
        """The record's JobPublic to the watchers of its target ("job" messages)."""
        handle = self.manager.handles.get(record.target)
        if handle is None:
            return
        for subscriber in handle.subscribers:
            subscriber.push_control({"type": "job", "job": record.public})

    # ---- reading jobs ----------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        """A job (running, or ended less than job_keep_seconds ago), or 404."""
        self._expire()
        record = self.jobs.get(job_id)
        if record is None:
            raise _error(404, f"job {job_id!r} not found")
        self._check_worker(record)
        return record

    @staticmethod
    def _check_worker(record: JobRecord) -> None:
        """A running job whose worker died, or whose shard restarted (a new incarnation does
        not have it), has failed: its end will never come."""
        worker = record.worker
        restarted = record.incarnation not in (None, getattr(worker, "incarnation", None))
        if record.running and (not worker.alive or restarted):
            record.finish(
                {
                    **record.public,
                    "state": "failed",
                    "detail": f"worker {record.worker.index} stopped",
                },
                (503, f"job {record.id} was lost: worker {record.worker.index} stopped"),
            )

    def _expire(self) -> None:
        """Drop ended jobs older than job_keep_seconds, and the oldest beyond MAX_ENDED_JOBS."""
        keep = self.settings.job_keep_seconds
        now = time.monotonic()
        ended = sorted((r.ended_at, j) for j, r in self.jobs.items() if r.end is not None)
        excess = len(ended) - MAX_ENDED_JOBS
        for index, (ended_at, job_id) in enumerate(ended):
            if index < excess or now - ended_at > keep:
                del self.jobs[job_id]

    def forget(self, record: JobRecord) -> None:
        """An ended job whose answer the route gave at once: nobody asks for it again."""
        if record.end is not None:
            self.jobs.pop(record.id, None)
            self.budgets.job_dropped(record.id)

    def owner_in_use(self, owner: str) -> bool:
        """Whether the owner has a race, a replay or a job (the owner registry keeps it)."""
        return any(h.owner == owner for h in (*self.races.values(), *self.replays.values())) or (
            any(r.owner == owner and r.running for r in self.jobs.values())
        )

    async def wait(self, record: JobRecord, seconds: float | None = None) -> bool:
        """Wait up to `seconds` (job_wait_seconds) for the job to end; whether it did."""
        seconds = self.settings.job_wait_seconds if seconds is None else seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(record.ended.wait(), seconds)
        self._check_worker(record)
        return not record.running

    async def cancel(self, record: JobRecord) -> None:
        """Stop a running job; its work stops before the worker's next slice."""
        if not record.running:
            return
        try:
            public = await self.manager.request(record.worker, "job_cancel", record.id)
        except Exception as error:
            if getattr(error, "status", None) != 404:  # it ended meanwhile: its end is on the way
                raise
            await self.wait(record, 1.0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(record.ended.wait(), 1.0)
        if record.running:
            record.finish(public, (409, public.get("detail")))

    # ---- budgets (app/sessions/job_budgets.py) ------------------------------------------------

    def refuse(self, detail: str) -> SessionCallError:
        """A 429 naming the setting, with Retry-After."""
        return refusal(self.settings, detail)

    def live(self, table: dict[str, Holding]) -> dict[str, Holding]:
        """Drop holdings whose worker or session is gone; the rest."""
        for key in [
            k
            for k, h in table.items()
            if not h.worker.alive or (table is self.replays and k not in self.manager.handles)
        ]:
            del table[key]
        return table

    # ---- starting jobs ---------------------------------------------------------------------

    async def reserve(
        self, kind: str, target: str, owner: str, worker: WorkerHandle
    ) -> JobRecord:
        """A job record under a fresh id, before its worker starts it (so no message of it
        can arrive unknown); 429 when the owner runs max_jobs_per_owner jobs."""
        record = self._record(kind, target, owner, worker)
        denied = await self.budgets.reserve_job(record)
        if denied is not None:
            raise self.refuse(denied)
        self.jobs[record.id] = record
        return record

    @staticmethod
    def _record(kind: str, target: str, owner: str, worker: WorkerHandle) -> JobRecord:
        """A new job's record (not on the board yet)."""
        job_id = secrets.token_urlsafe(9)
        public = {
            "id": job_id,
            "kind": kind,
            "target": target,
            "state": "running",
            "done": 0,
            "total": 0,
            "detail": None,
        }
        return JobRecord(job_id, kind, target, owner, worker, public)

    def started(self, record: JobRecord, reply: Any) -> None:
        """The worker's reply to a job start ({"job": JobPublic})."""
        if record.running:
            record.public = reply["job"]
        self.tell_subscribers(record)

    async def start(self, record: JobRecord, op: str, payload: dict[str, Any]) -> JobRecord:
        """Ask the record's worker to start the job; the record is dropped if it refuses."""
        payload = {**payload, "job": record.id, "max_seconds": self.settings.max_job_seconds}
        try:
            reply = await self.manager.request(record.worker, op, record.target, payload)
        except BaseException:
            self._drop(record)
            raise
        self.started(record, reply)
        return record

    def _drop(self, record: JobRecord) -> None:
        """A job that did not start (refused, failed, or not a job after all)."""
        if self.jobs.pop(record.id, None) is not None:
            self.budgets.job_dropped(record.id)

    async def step_command(
        self, session_id: str, owner: str, payload: dict[str, Any]
    ) -> tuple[JobRecord | None, Any]:
        """A REST command: a `step` becomes a job (the worker decides: the command's type is
        only known once it parsed the body); any other command answers as before."""
        handle = self.manager.get(session_id)
        record = self._record("step", session_id, owner, handle.worker)
        quota = await self.budgets.reserve_job(record)  # the worker refuses a step with it
        if quota is None:
            self.jobs[record.id] = record
        payload = {
            **payload,
            "job": record.id,
            "max_seconds": self.settings.max_job_seconds,
            "job_quota": quota,
        }
        try:
            reply = await self.manager.call(session_id, "command", payload)
        except BaseException as error:
            self._drop(record)
            status = getattr(error, "status", None)
            if status == 429 and not getattr(error, "headers", None):
                raise self.refuse(str(getattr(error, "detail", error))) from None
            raise
        if not (isinstance(reply, dict) and isinstance(reply.get("job"), dict)):
            self._drop(record)
            return None, reply
        handle.status = "running"
        self.started(record, reply)
        return record, reply

    # ---- races -----------------------------------------------------------------------------

    async def find_race(self, race_id: str) -> Holding:
        """`race`, or on a shared backend a race created through another replica (the
        directory says whose it is and where it lives; held here from then on)."""
        try:
            return self.race(race_id)
        except Exception as error:
            directory = self.directory
            if getattr(error, "status", None) != 404 or directory is None:
                raise
        found = None
        with contextlib.suppress(Exception):
            found = await directory.race.remote(race_id)
        workers = self.manager.workers
        if race_id in self.races:  # learned meanwhile (another request of it)
            return self.race(race_id)
        if found is None or not 0 <= found[1] < len(workers):
            raise _error(404, f"race {race_id!r} not found")
        holding = Holding(found[0], workers[found[1]], 0)
        self.races[race_id] = holding
        return holding

    def race(self, race_id: str) -> Holding:
        """Where a race lives, or 404 (also once it expired or its worker stopped)."""
        self._expire_races()
        holding = self.live(self.races).get(race_id)
        if holding is None:
            raise _error(404, f"race {race_id!r} not found")
        holding.last_active = time.monotonic()
        return holding

    def _expire_races(self) -> None:
        """Forget races unused for session_idle_seconds (their workers drop them); not on a
        shared backend, where another replica may be using them."""
        if self.manager.backend.shared:
            return
        idle = self.settings.session_idle_seconds
        now = time.monotonic()
        for race_id, holding in list(self.races.items()):
            busy = any(r.target == race_id and r.running for r in self.jobs.values())
            if not busy and now - holding.last_active > idle:
                del self.races[race_id]
                self.manager._forget(holding.worker, race_id, "race_delete")

    async def create_race(self, owner: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        """A new race on the least-loaded worker: its id and its first answer (JSON bytes)."""
        self._expire_races()
        live = [w for w in self.manager.workers if w.alive]
        if not live:
            raise _error(503, "no worker is running")
        worker = min(live, key=self._load)
        race_id = secrets.token_urlsafe(9)
        left, text = await self.budgets.reserve_race(race_id, owner, worker)
        holding = Holding(owner, worker, 0)
        self.races[race_id] = holding  # reserved: concurrent creates count it
        try:
            reply = await self.manager.request(
                worker,
                "race_create",
                race_id,
                {**payload, "memory_left": left, "memory_limit": text},
            )
        except BaseException as error:
            self.races.pop(race_id, None)
            self.budgets.race_dropped(race_id)
            if getattr(error, "status", None) == 429:
                raise self.refuse(str(getattr(error, "detail", error))) from None
            raise
        holding.nbytes = int(reply["bytes"])
        await self.budgets.race_created(race_id, owner, worker, holding.nbytes)
        return race_id, bytes(reply["body"])

    def _load(self, worker: WorkerHandle) -> int:
        """Sessions, races and running jobs on a worker (a new race goes to the lowest)."""
        return (
            worker.sessions
            + sum(h.worker is worker for h in self.races.values())
            + sum(r.worker is worker and r.running for r in self.jobs.values())
        )

    async def read_race(self, race_id: str) -> bytes:
        """A race's whole answer (every epoch's curves, grids), JSON bytes from its worker."""
        holding = await self.find_race(race_id)
        try:
            reply = await self.manager.request(holding.worker, "race_get", race_id)
        except Exception as error:
            self._gone(race_id, holding, error)
            raise
        holding.nbytes = int(reply["bytes"])
        return bytes(reply["body"])

    def _gone(self, race_id: str, holding: Holding, error: Exception) -> None:
        """Its worker does not have the race (deleted through another replica): forget it
        here too, so its bytes stop counting against the budgets."""
        if getattr(error, "status", None) == 404 and self.races.get(race_id) is holding:
            del self.races[race_id]

    async def delete_race(self, race_id: str) -> None:
        """Forget a race; a step of it running is cancelled."""
        holding = await self.find_race(race_id)
        try:
            await self.manager.request(holding.worker, "race_delete", race_id)
        finally:
            self.races.pop(race_id, None)
            self.budgets.race_dropped(race_id)

    async def step_race(self, race_id: str, owner: str, epochs: int, grids: bool) -> JobRecord:
        """Start a race step job (the race's owner only: checked by the route)."""
        holding = await self.find_race(race_id)
        await self.budgets.memory_left(holding.owner)
        record = await self.reserve("race_step", race_id, owner, holding.worker)
        try:
            return await self.start(record, "race_step", {"epochs": epochs, "grids": grids})
        except Exception as error:
            self._gone(race_id, holding, error)
            raise

    # ---- replays ---------------------------------------------------------------------------

    async def replay(self, session_id: str, owner: str) -> JobRecord:
        """Start (or join) the replay job of a session, on the session's worker."""
        for record in self.jobs.values():
            if record.kind == "replay" and record.target == session_id and record.running:
                return record  # one replay of a session at a time: wait on that one
        handle = self.manager.get(session_id)
        existing = self.live(self.replays).get(session_id)
        left, text, new = await self.budgets.reserve_replay(
            session_id, owner, handle.worker, existing
        )
        try:
            record = await self.reserve("replay", session_id, owner, handle.worker)
            self.replays[session_id] = existing or Holding(owner, handle.worker, 0)
            return await self.start(
                record, "replay_start", {"memory_left": left, "memory_limit": text}
            )
        except BaseException as error:
            if new:
                self.replays.pop(session_id, None)
                self.budgets.replay_dropped(session_id)
            if getattr(error, "status", None) == 429 and not getattr(error, "headers", None):
                raise self.refuse(str(getattr(error, "detail", error))) from None
            raise
