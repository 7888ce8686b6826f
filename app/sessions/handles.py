"""What the web process keeps per session: its handle (where it lives, who owns and watches
it), each watcher's frame slot (`Subscriber`), and the error a refused call raises.

A subscriber's slot is latest-frame-wins with every epoch row merged in (app/sessions/frames.py),
so a slow client costs one slot, not a queue; taking the frame tells the worker it may build the
next one (flow control, app/sessions/worker.py). app/sessions/manager.py drives them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.sessions.frames import FramePart, merge_parts
from app.sessions.worker_link import WorkerHandle

MAX_CONTROL_MESSAGES = 64


class SessionCallError(Exception):
    """A call the worker refused: HTTP status and detail, passed on by the routes."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


@dataclass(eq=False)
class Subscriber:
    """One websocket client of a session: a frame slot, control messages, a wake-up event."""

    session_id: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    part: FramePart | None = None
    controls: deque[str] = field(default_factory=deque)
    seeded: bool = False  # frames before the hello frame are already in it
    closing: bool = False
    overflow: bool = False
    ended_by_server: bool = False
    lost: bool = False  # its session's worker died (close 1011, not a delete's 1000)
    seq: int = 0
    on_taken: Callable[[], None] | None = None  # tells the worker the frame left the slot

    def take(self) -> FramePart | None:
        """The pending frame part, emptying the slot (the sender calls this before sending)."""
        part, self.part = self.part, None
        if part is not None and self.on_taken is not None:
            self.on_taken()
        return part

    def push_control(self, message: dict[str, Any]) -> None:
        """Queue a JSON text message; a client that lets 64 pile up is dropped, not buffered."""
        if len(self.controls) >= MAX_CONTROL_MESSAGES:
            self.overflow = True
        else:
            self.controls.append(json.dumps(message, allow_nan=False))
        self.event.set()

    def offer(self, part: FramePart, max_pending: int, max_lockstep_bytes: int) -> bool:
        """Merge a frame part into the slot (newest heavy state, every epoch row); False when
        this subscriber is not ready for frames yet (its hello frame is still on the way)."""
        if not self.seeded:
            return False
        self.part = merge_parts(self.part, part)
        lockstep = self.part.lockstep
        if len(self.part.rows) > max_pending or (
            lockstep is not None and lockstep.nbytes > max_lockstep_bytes
        ):
            self.overflow = True
        self.event.set()
        return True


@dataclass(eq=False)
class SessionHandle:
    """Where a session lives, who owns it and who watches it."""

    session_id: str
    worker: WorkerHandle
    subscribers: set[Subscriber] = field(default_factory=set)
    last_active: float = field(default_factory=time.monotonic)
    owner: str = ""  # the SHA-256 of the owner token (app/api/owners.py); never the token
    address: str = ""  # the client address that created it (per-address quotas)
    status: str = "paused"  # as of the worker's last reply about it ("running" = training)
    paused_unwatched: bool = False  # the manager paused it: nobody watched or called it
    starting: int = 0  # commands in flight that may start a run (counted as running: no race)
    ready: bool = True  # False while its create or restore is in flight (never idle then)
    restores: list[float] = field(default_factory=list)  # when its worker died (restore.py)
