"""The directory's job budgets (issue 12): `JobBudgets`, a part of `Directory` (ray_directory.py).

Running jobs per owner (max_jobs_per_owner), races, replays and the bytes they hold (the memory
budgets), over every replica's jobs (app/sessions/job_budgets.py asks), and whose each job and
race is and where it runs. The methods are the directory actor's own (a mixin: they run one at
a time with its others, so a check and its reservation are atomic). The shards report job ends
and bytes here (app/backends/shard_reports.py JobReports), and a restarted shard says so (its
jobs, races, replays are gone).

Every race and replay (with the bytes reported at its last job's end) is written to the
database (app/storage/placements.py: table directory_holdings) before the call that made it
answers, and a directory that Ray restarts reads them back in its constructor. The running jobs
are in memory only: a restarted directory asks the shards for theirs (not waiting: until they
answer, a moment, max_jobs_per_owner counts only the jobs started since).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

MAX_SHARDS = 256  # shard actors a restarted directory looks for (nnpg-shard-0, -1, ...)
MAX_JOBS = 10_000  # job entries kept at most (the oldest go first)
ENDED_UNKNOWN = 60.0  # s an end of a job this directory does not know is remembered
UNREPORTED_GRACE = 30.0  # s past max_job_seconds after which a job whose end never came is
# not counted (its worker stopped it at max_job_seconds; the end message was lost)


@dataclass
class JobEntry:
    """Whose a job is and where it runs (GET /api/jobs/{id} on any replica); running until its
    shard reports its end (max_jobs_per_owner counts the running ones)."""

    owner: str
    shard: int
    started: float
    running: bool = True
    max_seconds: float = float("inf")  # the worker stops it by then: not counted after


@dataclass
class Holding:
    """A race or a time-travel replay: whose, on which shard, the bytes it last reported."""

    owner: str
    shard: int
    nbytes: int = 0


class JobBudgets:
    """The job budgets of `Directory` (a mixin): jobs, races, replays and their bytes."""

    # The directory's own state, read here (and its owner list extended by a race's owner).
    sessions: dict[str, tuple[int, str, str]]
    known: set[str]
    owners: list[str]
    engine: Any

    def _start_budgets(self) -> None:
        """Nothing held, or (with a database: self.engine) the races and replays stored; a
        restarted directory asks the shards for their running jobs."""
        self.jobs: dict[str, JobEntry] = {}
        self.races: dict[str, Holding] = {}  # by race id
        self.replays: dict[str, Holding] = {}  # time-travel replays, by session id
        self.ended_unknown: dict[str, float] = {}  # ends of jobs not known here, when
        if self.engine is not None:
            from app.storage.placements import load_holdings

            for kind, key, owner, shard, nbytes in load_holdings(self.engine):
                table = self.races if kind == "race" else self.replays
                table[key] = Holding(owner, shard, nbytes)
        self._ask_shards_for_jobs()

    def _ask_shards_for_jobs(self) -> None:
        """A directory that Ray restarted asks every shard for its running jobs (Shard.
        report_jobs, which answers with `jobs_running`): max_jobs_per_owner counts them again
        within a moment. Submitted, never waited for (a starting shard waits on this actor)."""
        try:
            import ray

            context = ray.get_runtime_context()
            if context.get_actor_id() is None or not context.was_current_actor_reconstructed:
                return
            namespace = context.namespace
        except Exception:  # not in a Ray actor (a plain object: tests)
            return
        from app.backends.ray_shard import shard_name

        for index in range(MAX_SHARDS):
            try:
                shard = ray.get_actor(shard_name(index), namespace=namespace)
            except ValueError:
                break
            shard.report_jobs.remote()

    # ---- jobs and their budgets (app/sessions/job_budgets.py) ------------------------------

    def reserve_job(
        self, job_id: str, owner: str, shard: int, limit: int, max_seconds: float, keep: float
    ) -> str | None:
        """A job of `owner` about to start on `shard`: the 429 detail if the owner already runs
        `limit` (max_jobs_per_owner) jobs through any replica, else None and the job counts
        (running until its shard reports its end, or `max_seconds` pass: the worker stops it
        by then). Whose it is and where it runs is known from now on (`job`)."""
        now = time.monotonic()
        running = sum(
            e.owner == owner and e.running and now - e.started <= e.max_seconds
            for e in self.jobs.values()
        )
        if running >= limit:
            return (
                f"this owner runs {running} jobs; max_jobs_per_owner = {limit} (wait for "
                "one to end, or cancel it with DELETE /api/jobs/{id})"
            )
        self.job_started(job_id, owner, shard, keep)
        self.jobs[job_id].max_seconds = max_seconds + UNREPORTED_GRACE
        return None

    def job_started(self, job_id: str, owner: str, shard: int, keep: float) -> None:
        """A replica starts a job on `shard`: whose it is and where it runs, so any replica
        that hears of it from the shard can answer GET /api/jobs/{id} (an entry reserved
        already stays as it is). Entries older than `keep` seconds (max_job_seconds +
        job_keep_seconds: the job has ended and expired by then) are dropped, and the oldest
        beyond MAX_JOBS."""
        now = time.monotonic()
        self.jobs.setdefault(job_id, JobEntry(owner, shard, now))
        for old in [j for j, e in self.jobs.items() if now - e.started > keep]:
            del self.jobs[old]
        excess = len(self.jobs) - MAX_JOBS
        if excess > 0:
            for old in sorted(self.jobs, key=lambda j: self.jobs[j].started)[:excess]:
                del self.jobs[old]

    def job(self, job_id: str) -> tuple[str, int] | None:
        """(owner, shard) of a job, or None."""
        entry = self.jobs.get(job_id)
        return None if entry is None else (entry.owner, entry.shard)

    def job_forget(self, job_id: str) -> None:
        """A job answered at once (nobody polls it), or one that never started."""
        self.jobs.pop(job_id, None)

    def reported(
        self, shard: int, ended: list[str], memory: list[tuple[str, str, int, bool]]
    ) -> None:
        """What a shard's worker said of its jobs (shard_reports.py JobReports, batched): the jobs
        that ended, and the bytes races and replays hold now ((kind, key, bytes, final): a final
        count, at a job's end, is stored; 0 bytes: a new replay stopped early keeps nothing).
        From the shard, so an end counts even when the replica that started the job died."""
        now = time.monotonic()
        for job_id in ended:
            entry = self.jobs.get(job_id)
            if entry is not None:
                entry.running = False
            else:  # a shard's list of running jobs sent before this end may still come
                self.ended_unknown[job_id] = now
        for old in [j for j, at in self.ended_unknown.items() if now - at > ENDED_UNKNOWN]:
            del self.ended_unknown[old]
        for kind, key, nbytes, final in memory:
            table = self.races if kind == "race" else self.replays
            holding = table.get(key)
            if holding is None or holding.shard != shard:
                continue
            if nbytes:
                holding.nbytes = nbytes
                if final:
                    self._store(kind, key, holding)
            else:
                self._drop(kind, key)

    def jobs_running(self, shard: int, jobs: list[tuple[str, str, str]]) -> None:
        """A shard's running jobs (job id, kind, target), asked by a restarted directory: each
        counts for its target's owner (the session's, or the race's)."""
        now = time.monotonic()
        for job_id, kind, target in jobs:
            if kind == "race_step":
                owner = self.races[target].owner if target in self.races else ""
            else:
                owner = self.sessions.get(target, (0, "", ""))[1]
            if owner and job_id not in self.jobs and job_id not in self.ended_unknown:
                self.jobs[job_id] = JobEntry(owner, shard, now)

    def shard_started(self, shard: int) -> None:
        """A shard (re)started: what its worker held is gone (its jobs, races and replays)."""
        for entry in self.jobs.values():
            if entry.shard == shard:
                entry.running = False
        for kind, table in (("race", self.races), ("replay", self.replays)):
            for key in [k for k, h in table.items() if h.shard == shard]:
                self._drop(kind, key)

    # ---- races, replays and the memory budgets ----------------------------------------------

    def memory_left(
        self, owner: str, limits: dict[str, int], exclude: Holding | None = None
    ) -> tuple[int, str] | str:
        """The bytes a new race or replay of `owner` may take and the limit that says so, or
        the 429 detail when nothing is left (max_job_memory_bytes_per_owner over the owner's
        races and replays, max_job_memory_bytes over everyone's)."""
        holdings = [
            h for h in (*self.races.values(), *self.replays.values()) if h is not exclude
        ]
        total = sum(h.nbytes for h in holdings)
        mine = sum(h.nbytes for h in holdings if h.owner == owner)
        per_owner = limits["max_job_memory_bytes_per_owner"]
        overall = limits["max_job_memory_bytes"]
        owner_left, total_left = per_owner - mine, overall - total
        if owner_left <= total_left:
            text = (
                f"this owner's races and replays hold {mine} bytes; "
                f"max_job_memory_bytes_per_owner = {per_owner}"
            )
        else:
            text = f"all races and replays hold {total} bytes; max_job_memory_bytes = {overall}"
        left = min(owner_left, total_left)
        if left <= 0:
            return text + " (delete a race or a session with a replay)"
        return left, text

    def reserve_race(
        self, race_id: str, owner: str, shard: int, limits: dict[str, int]
    ) -> tuple[int, str] | str:
        """A new race of `owner` on `shard`: the bytes it may take and the limit's text
        (memory_left), or the 429 detail (max_sessions races in all, max_races_per_owner, the
        memory budgets). Counted from now on; `race_created` gives its bytes, `race_deleted`
        drops it (its create failed, or it was deleted)."""
        if len(self.races) >= limits["max_sessions"]:
            return f"{len(self.races)} races exist; max_sessions = {limits['max_sessions']}"
        mine = sum(h.owner == owner for h in self.races.values())
        if mine >= limits["max_races_per_owner"]:
            return (
                f"this owner has {mine} races; max_races_per_owner = "
                f"{limits['max_races_per_owner']} (delete one first)"
            )
        left = self.memory_left(owner, limits)
        if not isinstance(left, str):
            self.races[race_id] = Holding(owner, shard)
        return left

    def race_created(self, race_id: str, owner: str, shard: int, nbytes: int = 0) -> None:
        """A replica made a race on `shard` (any replica may read, step or delete it, and its
        owner's token works on every replica); stored."""
        holding = self.races.setdefault(race_id, Holding(owner, shard))
        holding.owner, holding.shard, holding.nbytes = owner, shard, nbytes or holding.nbytes
        self._store("race", race_id, holding)
        if owner and owner not in self.known:  # its token works on every replica
            if self.engine is not None:
                from app.storage.placements import add_owner

                add_owner(self.engine, owner)
            self.known.add(owner)
            self.owners.append(owner)

    def race(self, race_id: str) -> tuple[str, int] | None:
        """(owner, shard) of a race, or None."""
        holding = self.races.get(race_id)
        return None if holding is None else (holding.owner, holding.shard)

    def race_deleted(self, race_id: str) -> None:
        """A race was deleted (through any replica), or its create failed."""
        self._drop("race", race_id)

    def reserve_replay(
        self, session_id: str, owner: str, shard: int, limits: dict[str, int]
    ) -> tuple[int, str, bool] | str:
        """A replay of a session: (bytes it may take, the limit's text, whether it is a new
        replay), or the 429 detail (max_replays_per_owner for a new one, the memory budgets,
        not counting the replay it replaces). A new one counts from now on; `replay_dropped`
        drops it if it never starts."""
        existing = self.replays.get(session_id)
        if existing is None:
            mine = sum(h.owner == owner for h in self.replays.values())
            if mine >= limits["max_replays_per_owner"]:
                return (
                    f"this owner has {mine} replays; max_replays_per_owner = "
                    f"{limits['max_replays_per_owner']} (delete a session to drop its replay)"
                )
        left = self.memory_left(owner, limits, exclude=existing)
        if isinstance(left, str):
            return left
        if existing is None:
            self.replays[session_id] = Holding(owner, shard)
        return left[0], left[1], existing is None

    def replay_dropped(self, session_id: str) -> None:
        """A new replay that did not start (refused by its worker, or failed)."""
        self._drop("replay", session_id)

    def _store(self, kind: str, key: str, holding: Holding) -> None:
        if self.engine is not None:
            from app.storage.placements import save_holding

            save_holding(self.engine, kind, key, holding.owner, holding.shard, holding.nbytes)

    def _drop(self, kind: str, key: str) -> None:
        table = self.races if kind == "race" else self.replays
        if table.pop(key, None) is not None and self.engine is not None:
            from app.storage.placements import delete_holding

            delete_holding(self.engine, kind, key)
