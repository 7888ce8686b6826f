"""Where sessions live (issue 12): the seam between the web layer and the session hosts.

`SessionManager` (app/sessions/manager.py) keeps handles, subscribers, owners and quotas and
talks to *worker links*: objects with WorkerHandle's surface (send, tell_taken, alive, ready,
sessions, index, stop) that carry the worker pipe protocol of app/sessions/worker.py. A backend
makes those links and answers the few questions that differ when sessions are shared by many
web replicas:

- `local` (the default, app/backends/local.py): worker processes of this web process, over
  pipes; exactly what ran before the seam. No extra dependency.
- `ray` (app/backends/ray_backend.py, `pip install -e ".[ray]"`): shard actors, named and
  detached, that each run the same Worker loop for many sessions; a directory actor places
  sessions and keeps their owners, so every replica sees the same sessions and quotas.

Selected by the setting `backend` (NN_PLAYGROUND_BACKEND=local|ray; RAY_ADDRESS or
NN_PLAYGROUND_RAY_ADDRESS says which cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sessions.manager import SessionHandle, SessionManager
    from app.settings import Settings


class SessionBackend:
    """The interface; the base class is the local backend's behaviour for every question."""

    name = "base"
    # Sessions are shared by web replicas: placement, owners and session quotas are decided by
    # the backend (not by this process's handles), and the replica keeps no session state of
    # its own that outlives a request (no replica-side persistence, standby or idle janitor).
    shared = False

    async def start(self, manager: SessionManager, count: int) -> list[Any]:
        """Start (or join) the session hosts; the worker links, one per host."""
        raise NotImplementedError

    def new_worker(self, manager: SessionManager, index: int) -> Any:
        """A fresh worker link in place of a dead one (or a warmed standby)."""
        raise NotImplementedError

    async def place(
        self, manager: SessionManager, session_id: str, owner: str, address: str
    ) -> Any | None:
        """The worker link a new session goes to, after the shared quotas (None: the manager
        decides with its own handles, as the local backend does)."""
        return None

    async def locate(self, manager: SessionManager, session_id: str) -> SessionHandle | None:
        """A handle for a session this replica has no handle of (None: no such session)."""
        return None

    async def run_refusal(self, manager: SessionManager, handle: SessionHandle) -> str | None:
        """A shared backend's running quotas (the 429 detail, or None); the local backend's
        are the manager's own."""
        return None

    async def run_answered(self, manager: SessionManager, handle: SessionHandle) -> None:
        """A play or step that run_refusal let through was answered (a shared backend's run
        grant has landed, before the client hears of it)."""

    def released(self, session_id: str) -> None:
        """The manager forgot a session (deleted, or its create failed)."""

    def tell(self, manager: SessionManager, session_id: str, message: dict[str, Any]) -> None:
        """A JSON message to every websocket client of a session (a class's notices); a
        shared backend reaches its clients on every replica."""
        handle = manager.handles.get(session_id)
        if handle is not None:
            for subscriber in handle.subscribers:
                subscriber.push_control(message)

    async def stop(self) -> None:
        """Leave the hosts (the local backend's workers are stopped by the manager)."""


def backend_for(settings: Settings) -> SessionBackend:
    """The backend the settings name (the ray one is imported only when asked for)."""
    if settings.backend == "ray":
        from app.backends.ray_backend import RayBackend

        return RayBackend(settings)
    from app.backends.local import LocalBackend

    return LocalBackend()
