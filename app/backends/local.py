"""The local backend: worker processes (or one thread) of this web process, over pipes.

Exactly the behaviour from before the seam (app/sessions/worker_link.py WorkerHandle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.backends import SessionBackend
from app.sessions.worker_link import WorkerHandle

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager


class LocalBackend(SessionBackend):
    """`count` worker processes (0 or fewer: one worker thread in this process)."""

    name = "local"

    async def start(self, manager: SessionManager, count: int) -> list[WorkerHandle]:
        return [WorkerHandle(i, manager.use_processes, manager) for i in range(max(1, count))]

    def new_worker(self, manager: SessionManager, index: int) -> WorkerHandle:
        return WorkerHandle(index, manager.use_processes, manager)
