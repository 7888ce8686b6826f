"""Other replicas' jobs, as one web replica learns them (a shared backend: ray).

A job is readable through every replica: the directory knows whose it is and on which shard it
runs (its budgets reserved it: app/sessions/job_budgets.py), and the shards send every job
message to every replica, so a replica that hears of a job it does not know asks the directory
for its owner once and keeps a record of it from then on, as its own (progress, end and answer;
`GET /api/jobs/{id}` and its result, its watchers' "job" messages) on its job board
(app/sessions/jobs.py). Bounded: at most MAX_FOREIGN_PENDING jobs being asked about at once,
and the answers of other replicas' jobs within FOREIGN_END_BYTES (the oldest go first).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sessions.jobs import JobBoard, JobRecord

JOB_KINDS = ("race_step", "replay", "step")
MAX_UNKNOWN = 10_000  # job ids the directory did not know, kept at most (then forgotten)
MAX_FOREIGN_PENDING = 1_000  # other replicas' jobs asked about at once (the rest are not learned)
FOREIGN_END_BYTES = 64_000_000  # answers of other replicas' jobs kept (bytes bodies), at most
LEARN_TRIES = 5  # directory lookups of a job heard of before it was registered (0.2 s apart)


class ForeignJobs:
    """The jobs of other replicas a board hears of: learned through the directory."""

    def __init__(self, board: JobBoard) -> None:
        self.board = board
        # Jobs heard of and being asked about: job id -> (JobPublic, end).
        self.learning: dict[str, tuple[dict[str, Any], tuple[int, Any] | None]] = {}
        self.unknown: set[str] = set()  # jobs the directory did not know (not asked again)
        self.learners: set[asyncio.Task[None]] = set()

    def learn(self, public: dict[str, Any], end: tuple[int, Any] | None) -> None:
        """A message of a job this replica does not know: another replica started it. Keep
        its latest state and ask the directory once whose it is (runs on the event loop).
        Learned from a progress message only: a job whose first message is its end ran under
        PROGRESS_PERIOD (0.25 s), so its replica answered it at once and nobody polls it."""
        directory = self.board.directory
        job_id = public["id"]
        if directory is None or public.get("kind") not in JOB_KINDS:
            return
        if job_id in self.unknown:
            return
        known = self.learning.get(job_id)
        if known is not None:
            self.learning[job_id] = (public, end or known[1])
            return
        if end is not None or len(self.learning) >= MAX_FOREIGN_PENDING:
            return
        self.learning[job_id] = (public, end)
        task = self.board.manager.loop.create_task(self._ask_directory(job_id, directory))
        self.learners.add(task)
        task.add_done_callback(self.learners.discard)

    async def _ask_directory(self, job_id: str, directory: Any) -> None:
        from app.sessions.jobs import JobRecord  # a cycle at import time otherwise

        found = None
        for _ in range(LEARN_TRIES):  # its registration may still be on its way
            with contextlib.suppress(Exception):
                found = await directory.job.remote(job_id)
            if found is not None:
                break
            await asyncio.sleep(0.2)
        public, end = self.learning.pop(job_id, ({}, None))
        board = self.board
        workers = board.manager.workers
        if found is None:
            if len(self.unknown) >= MAX_UNKNOWN:
                self.unknown.clear()
            self.unknown.add(job_id)  # e.g. started before the directory restarted
        if found is None or job_id in board.jobs or not public:
            return
        owner, shard = found
        if not 0 <= shard < len(workers):
            return
        record = JobRecord(
            job_id, public["kind"], public["target"], owner, workers[shard], public, foreign=True
        )
        board.jobs[job_id] = record
        if end is not None:
            record.finish(public, end)
            self.bound_ends()
        board.tell_subscribers(record)

    def bound_ends(self) -> None:
        """Drop the oldest ended jobs of other replicas while their answers' bytes exceed
        FOREIGN_END_BYTES (this replica keeps them only in case a client polls it)."""
        jobs = self.board.jobs
        ended = sorted((r.ended_at, j) for j, r in jobs.items() if r.foreign and r.end is not None)
        sizes = {j: _end_bytes(jobs[j]) for _, j in ended}
        total = sum(sizes.values())
        for _, job_id in ended:
            if total <= FOREIGN_END_BYTES:
                break
            total -= sizes[job_id]
            del jobs[job_id]


def _end_bytes(record: JobRecord) -> int:
    """The bytes of an ended job's answer when it is JSON bytes (a race's grids); small
    JSON-ready answers (a session's state) count 0."""
    body = record.end[1] if record.end is not None else None
    return len(body) if isinstance(body, bytes | bytearray) else 0
