"""The quotas on sessions: how many an owner and a client address may have live, stored and
training at once (each limit a setting). A refusal is a 429 that names the setting, with a
Retry-After of quota_retry_after_seconds.

The running quotas are counted over the web process's handles, or, with a shared backend, where
every replica's sessions train (app/backends). app/sessions/manager.py asks before it creates a
session and before a command that may start one training.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from app.sessions.handles import SessionCallError, SessionHandle

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager


class SessionQuotas:
    """The owners' and addresses' limits over one manager's sessions."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def error(self, detail: str) -> SessionCallError:
        """A 429 naming the limit, with a Retry-After of quota_retry_after_seconds."""
        return SessionCallError(429, detail, self.headers(429))

    def headers(self, status: int) -> dict[str, str] | None:
        """The headers of a refusal with this status (Retry-After for a 429)."""
        if status != 429:
            return None
        return {"Retry-After": str(self.manager.settings.quota_retry_after_seconds)}

    def check_new(self, owner: str, address: str) -> None:
        """Raise the 429 if one more session would pass the owner's or the address's quota."""
        settings, handles = self.manager.settings, self.manager.handles
        persistence = self.manager.persistence
        owned = sum(h.owner == owner for h in handles.values()) if owner else 0
        if owner and owned >= settings.max_sessions_per_owner:
            raise self.error(
                f"this owner has {owned} live sessions; max_sessions_per_owner = "
                f"{settings.max_sessions_per_owner} (delete one, or wait for one to expire)"
            )
        stored = persistence.stored_owners.get(owner, 0) if persistence else 0
        if owner and owned + stored >= settings.max_stored_sessions_per_owner:
            raise self.error(
                f"this owner has {owned} live and {stored} stored sessions; "
                f"max_stored_sessions_per_owner = {settings.max_stored_sessions_per_owner} "
                "(delete one)"
            )
        from_address = sum(h.address == address for h in handles.values())
        if address and from_address >= settings.max_sessions_per_address:
            raise self.error(
                f"address {address} has {from_address} live sessions; "
                f"max_sessions_per_address = {settings.max_sessions_per_address}"
            )

    def _running(self, handle: SessionHandle) -> tuple[list[SessionHandle], list[SessionHandle]]:
        """The other sessions of the same owner and of the same address that train now."""
        others = [
            h for h in self.manager.handles.values()
            if h is not handle and (h.status == "running" or h.starting)
        ]
        return (
            [h for h in others if handle.owner and h.owner == handle.owner],
            [h for h in others if handle.address and h.address == handle.address],
        )

    async def run_refusal(self, handle: SessionHandle) -> str | None:
        """The 429 detail if one more running session would pass a running quota, else None."""
        manager = self.manager
        if manager.backend.shared:  # counted where every replica's sessions train (app/backends)
            return await manager.backend.run_refusal(manager, handle)
        settings = manager.settings
        by_owner, by_address = self._running(handle)
        if (
            len(by_owner) < settings.max_running_per_owner
            and len(by_address) < settings.max_running_per_address
        ):
            return None
        # Statuses are as of the last reply: a run may have ended since (budget, a step done).
        for other in {*by_owner, *by_address}:
            with contextlib.suppress(SessionCallError):
                reply = await manager.request(other.worker, "get", other.session_id)
                manager.track_status(other, reply)
        by_owner, by_address = self._running(handle)
        if len(by_owner) >= settings.max_running_per_owner:
            return (
                f"this owner has {len(by_owner)} sessions training; max_running_per_owner = "
                f"{settings.max_running_per_owner} (pause one first)"
            )
        if len(by_address) >= settings.max_running_per_address:
            return (
                f"address {handle.address} has {len(by_address)} sessions training; "
                f"max_running_per_address = {settings.max_running_per_address}"
            )
        return None
