"""The job budgets (docs/protocol.md "Jobs"): who may start a job, a race or a replay.

max_jobs_per_owner (running jobs: race steps, replays, REST steps), max_races_per_owner and
max_sessions (races), max_replays_per_owner, and the memory budgets max_job_memory_bytes_per_owner
and max_job_memory_bytes (the bytes races and replays report). A refusal is a 429 naming the
setting, its value and the limit, with Retry-After.

Two implementations of one async surface, chosen by the job board (app/sessions/jobs.py):

- `LocalBudgets` (the local backend, one web process): counted from the board's own records
  (its running jobs, its races' and replays' last reported bytes). A check and the record it
  allows are made with no await in between, so concurrent requests cannot both pass.
- `DirectoryBudgets` (a shared backend, ray: many replicas): the directory actor decides
  (app/backends/directory_budgets.py `reserve_job`, `reserve_race`, `reserve_replay`,
  `memory_left`), over every replica's jobs, races and replays: it runs one call at a time, so
  a check and its reservation are atomic across replicas. Ends and bytes reach it from the
  shards (shard_reports.py JobReports), so they count even when the replica that started a job
  died; races and replays are stored in the database and outlive a directory restart.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sessions.jobs import Holding, JobBoard, JobRecord
    from app.sessions.manager import SessionCallError
    from app.sessions.worker_link import WorkerHandle
    from app.settings import Settings


def refusal(settings: Settings, detail: str) -> SessionCallError:
    """A 429 naming the setting, with Retry-After."""
    from app.sessions.manager import SessionCallError  # a cycle at import time otherwise

    retry = max(1, round(settings.quota_retry_after_seconds))
    return SessionCallError(429, detail, {"Retry-After": str(retry)})


def memory_limits(settings: Settings) -> dict[str, int]:
    """The settings of the race and replay budgets, as the directory reads them."""
    return {
        "max_sessions": settings.max_sessions,
        "max_races_per_owner": settings.max_races_per_owner,
        "max_replays_per_owner": settings.max_replays_per_owner,
        "max_job_memory_bytes_per_owner": settings.max_job_memory_bytes_per_owner,
        "max_job_memory_bytes": settings.max_job_memory_bytes,
    }


class LocalBudgets:
    """The budgets of one web process, from its job board's records."""

    def __init__(self, board: JobBoard) -> None:
        self.board = board

    @property
    def settings(self) -> Settings:
        return self.board.settings

    async def reserve_job(self, record: JobRecord) -> str | None:
        """The 429 detail if the record's owner already runs max_jobs_per_owner jobs, else
        None (the caller records the job before its next await)."""
        limit = self.settings.max_jobs_per_owner
        owner = record.owner
        running = sum(r.owner == owner and r.running for r in self.board.jobs.values())
        if running >= limit:
            return (
                f"this owner runs {running} jobs; max_jobs_per_owner = {limit} (wait for "
                "one to end, or cancel it with DELETE /api/jobs/{id})"
            )
        return None

    def job_dropped(self, job_id: str) -> None:
        """A job that never started, or ended and forgotten: the board's record is gone."""

    def job_ended(self, record: JobRecord) -> None:
        """This replica heard a job's end (its own or another replica's): the board's own
        count sees it already."""

    async def memory_left(self, owner: str, exclude: Holding | None = None) -> tuple[int, str]:
        """The bytes a new race or replay of `owner` may take, and the limit that says so;
        429 when nothing is left."""
        board, settings = self.board, self.settings
        holdings = [
            h
            for h in (*board.live(board.races).values(), *board.live(board.replays).values())
            if h is not exclude
        ]
        total = sum(h.nbytes for h in holdings)
        mine = sum(h.nbytes for h in holdings if h.owner == owner)
        owner_left = settings.max_job_memory_bytes_per_owner - mine
        total_left = settings.max_job_memory_bytes - total
        if owner_left <= total_left:
            text = (
                f"this owner's races and replays hold {mine} bytes; "
                f"max_job_memory_bytes_per_owner = {settings.max_job_memory_bytes_per_owner}"
            )
        else:
            text = (
                f"all races and replays hold {total} bytes; max_job_memory_bytes = "
                f"{settings.max_job_memory_bytes}"
            )
        left = min(owner_left, total_left)
        if left <= 0:
            raise refusal(settings, text + " (delete a race or a session with a replay)")
        return left, text

    async def reserve_race(
        self, race_id: str, owner: str, worker: WorkerHandle
    ) -> tuple[int, str]:
        """A new race: the bytes it may take and the limit's text; 429 (max_sessions races,
        max_races_per_owner, the memory budgets). The caller holds it before its next await."""
        settings = self.settings
        races = self.board.live(self.board.races)
        if len(races) >= settings.max_sessions:
            raise refusal(
                settings, f"{len(races)} races exist; max_sessions = {settings.max_sessions}"
            )
        mine = sum(h.owner == owner for h in races.values())
        if mine >= settings.max_races_per_owner:
            raise refusal(
                settings,
                f"this owner has {mine} races; max_races_per_owner = "
                f"{settings.max_races_per_owner} (delete one first)",
            )
        return await self.memory_left(owner)

    async def race_created(
        self, race_id: str, owner: str, worker: WorkerHandle, nbytes: int
    ) -> None:
        """The race's worker made it (its bytes are in the board's holding)."""

    def race_dropped(self, race_id: str) -> None:
        """A race deleted, or whose create failed (the board dropped its holding)."""

    async def reserve_replay(
        self, session_id: str, owner: str, worker: WorkerHandle, existing: Holding | None
    ) -> tuple[int, str, bool]:
        """A replay of a session (`existing`: the one this board holds): the bytes it may take,
        the limit's text and whether it is a new replay (`replay_dropped` if it never starts);
        429 (max_replays_per_owner for a new one, the memory budgets, without the one it
        replaces)."""
        if existing is None:
            replays = self.board.live(self.board.replays)
            mine = sum(h.owner == owner for h in replays.values())
            limit = self.settings.max_replays_per_owner
            if mine >= limit:
                raise refusal(
                    self.settings,
                    f"this owner has {mine} replays; max_replays_per_owner = {limit} (delete a "
                    "session to drop its replay)",
                )
        left, text = await self.memory_left(owner, exclude=existing)
        return left, text, existing is None

    def replay_dropped(self, session_id: str) -> None:
        """A new replay that did not start (the board dropped its holding)."""


class DirectoryBudgets(LocalBudgets):
    """The budgets over every replica, decided by the ray backend's directory actor (see the
    module docstring). Calls that only tell it something are not waited for."""

    def __init__(self, board: JobBoard, directory: Any) -> None:
        super().__init__(board)
        self.directory = directory

    def _tell(self, method: str, *args: Any) -> None:
        with contextlib.suppress(Exception):
            getattr(self.directory, method).remote(*args)

    async def reserve_job(self, record: JobRecord) -> str | None:
        settings = self.settings
        keep = settings.max_job_seconds + settings.job_keep_seconds
        answer: str | None = await self.directory.reserve_job.remote(
            record.id,
            record.owner,
            record.worker.index,
            settings.max_jobs_per_owner,
            settings.max_job_seconds,
            keep,
        )
        return answer

    def job_dropped(self, job_id: str) -> None:
        self._tell("job_forget", job_id)

    def job_ended(self, record: JobRecord) -> None:
        # The shard reports every end too, but on its own connection: told from here as well,
        # the end is at the directory before this replica's next call (Ray keeps one caller's
        # calls to an actor in order), so a client that read the end here and starts its next
        # job here is never refused for the job that just ended.
        self._tell("reported", record.worker.index, [record.id], [])

    def _decided(self, answer: Any) -> Any:
        if isinstance(answer, str):
            raise refusal(self.settings, answer)
        return answer

    async def memory_left(self, owner: str, exclude: Holding | None = None) -> tuple[int, str]:
        limits = memory_limits(self.settings)
        left, text = self._decided(await self.directory.memory_left.remote(owner, limits))
        return int(left), str(text)

    async def reserve_race(
        self, race_id: str, owner: str, worker: WorkerHandle
    ) -> tuple[int, str]:
        limits = memory_limits(self.settings)
        answer = await self.directory.reserve_race.remote(race_id, owner, worker.index, limits)
        left, text = self._decided(answer)
        return int(left), str(text)

    async def race_created(
        self, race_id: str, owner: str, worker: WorkerHandle, nbytes: int
    ) -> None:
        # Known there before the client has the id (~1 ms): any replica may read, step or
        # delete it.
        with contextlib.suppress(Exception):
            await self.directory.race_created.remote(race_id, owner, worker.index, nbytes)

    def race_dropped(self, race_id: str) -> None:
        self._tell("race_deleted", race_id)

    async def reserve_replay(
        self, session_id: str, owner: str, worker: WorkerHandle, existing: Holding | None
    ) -> tuple[int, str, bool]:
        limits = memory_limits(self.settings)
        answer = await self.directory.reserve_replay.remote(
            session_id, owner, worker.index, limits
        )
        left, text, new = self._decided(answer)
        return int(left), str(text), bool(new)

    def replay_dropped(self, session_id: str) -> None:
        self._tell("replay_dropped", session_id)
