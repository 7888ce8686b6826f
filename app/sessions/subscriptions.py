"""Websocket clients of a session: subscribing one (its slot seeded with the hello and the
full-history frame), seeding it again after its session was restored, and unsubscribing it.

Frames then reach the subscribers' slots through app/sessions/manager.py (`_offer`, in pipe
order); a subscriber of a session paused for want of watchers plays it again (idle.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from app.sessions.handles import SessionCallError, SessionHandle, Subscriber

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager


class Subscriptions:
    """Subscribe and unsubscribe the websocket clients of one manager's sessions."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    async def subscribe(self, session_id: str) -> Subscriber:
        """Register a websocket client; its slot is seeded with the full-history first frame."""
        handle = await self.manager.ensure(session_id)
        # The handle's worker as of each frame taken: a restored session moves to a new one.
        subscriber = Subscriber(
            session_id, on_taken=lambda: handle.worker.tell_taken(session_id)
        )
        handle.subscribers.add(subscriber)
        try:
            await self._seed(handle, subscriber)
        except BaseException:
            handle.subscribers.discard(subscriber)
            raise
        if handle.paused_unwatched:
            await self.manager.idle.resume(handle)
        return subscriber

    async def _seed(self, handle: SessionHandle, subscriber: Subscriber) -> None:
        """Subscribe in the worker; its reply pushes the hello and the full-history frame."""

        def seed(reply: dict[str, Any]) -> None:
            # Runs in pipe order, so later frames merge after this one and none is missed.
            subscriber.push_control({"type": "hello", "protocol": 1, "session": reply["session"]})
            subscriber.part = reply["part"]
            subscriber.seeded = True
            subscriber.event.set()

        await self.manager.request(handle.worker, "subscribe", handle.session_id, None, seed)

    async def reseed(self, handle: SessionHandle, subscriber: Subscriber) -> None:
        """A restored session's watcher: a fresh hello and full frame on the same connection
        (if that fails, the watcher is closed as lost)."""
        try:
            await self._seed(handle, subscriber)
        except SessionCallError as error:
            subscriber.push_control({"type": "lost", "detail": str(error.detail)})
            subscriber.lost = subscriber.closing = True
            subscriber.event.set()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a websocket client (its worker stops building frames nobody reads).

        Synchronous and fire-and-forget, so it is safe in a cancelled handler's cleanup.
        """
        handle = self.manager.handles.get(subscriber.session_id)
        if handle is None or subscriber not in handle.subscribers:
            return
        handle.subscribers.discard(subscriber)
        handle.last_active = time.monotonic()
        self.manager.forget_call(handle.worker, subscriber.session_id, "unsubscribe")
