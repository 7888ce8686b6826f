"""A shard's job reports to the directory: `JobReports` (issue 12; the shard: ray_shard.py).

The directory's job budgets (app/sessions/job_budgets.py, app/backends/directory_budgets.py)
count every replica's jobs, races and replays; the shard is where they end, so it reports job
ends and the bytes races and replays hold, and a restarted shard says it started (what the one
before held is gone).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from app.backends.ray_directory import DIRECTORY


class JobReports:
    """What a shard's worker says of its jobs, for the directory's job budgets
    (app/sessions/job_budgets.py): job ends and the bytes races and replays hold, sent by a
    thread of their own (never the worker's) as one fire-and-forget `Directory.reported` call
    per batch, right away (a job's end frees its owner's slot for every replica, even when the
    replica that started it died). A new incarnation first tells the directory it started:
    the jobs, races and replays of the one before are gone."""

    def __init__(self, index: int, namespace: str) -> None:
        self.index, self.namespace = index, namespace
        self.lock = threading.Condition()
        self.ended: list[str] = []
        self.memory: dict[tuple[str, str], tuple[int, bool]] = {}  # (kind, key) -> bytes, final
        self.directory: Any = None
        self.sent = 0
        threading.Thread(target=self._run, name=f"shard-{index}-jobs", daemon=True).start()

    def add(self, job_id: str, ended: bool, memory: tuple[str, str, int] | None) -> None:
        """One job message (the worker thread: it only queues)."""
        with self.lock:
            if ended:
                self.ended.append(job_id)
            if memory is not None:
                kind, key, nbytes = memory
                final = ended or self.memory.get((kind, key), (0, False))[1]
                self.memory[(kind, key)] = (nbytes, final)
            self.lock.notify()

    def find(self) -> Any:
        """The directory actor (waiting for it: a thread of its own)."""
        import ray

        while self.directory is None:
            try:
                self.directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            except Exception:
                time.sleep(0.2)
        return self.directory

    def started(self) -> None:
        """Tell the directory this incarnation started (the shard's constructor, before any
        replica can reach it; submitted, not waited for: no deadlock). No directory yet: a
        first start, nothing to forget."""
        import ray

        with contextlib.suppress(Exception):
            self.directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            self.directory.shard_started.remote(self.index)

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.ended and not self.memory:
                    self.lock.wait()
                ended, self.ended = self.ended, []
                memory = [(k, key, n, f) for (k, key), (n, f) in self.memory.items()]
                self.memory = {}
            with contextlib.suppress(Exception):
                self.find().reported.remote(self.index, ended, memory)
                self.sent += 1
