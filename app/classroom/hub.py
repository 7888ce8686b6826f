"""The classroom hub (web process): each class's learners, its open dashboards, and the tiles.

One hub per app (app.state.classroom). A class is loaded from the database on first use and
kept in memory (at most max_classes of them exist); every change to its learners goes through
the hub, which writes it to the database (a database thread) and tells the dashboards.

Tiles cost little: while at least one dashboard of a class is open, one task per class asks
each worker for the tiles of the learners it holds (op "class_tiles", app/classroom/tiles.py),
at most `tile_fps` times a second, naming the tile each learner last had; a worker draws only
the ones that changed (24 x 24 by default: ~0.2 ms of CPU each). Nobody watching: no task.
A dashboard is one websocket for the whole class with a latest-tile-wins slot per learner, so a
slow dashboard gets fewer tiles, never a queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from app.api.owners import hashes_match, token_hash
from app.sessions.manager import SessionCallError, SessionManager
from app.sessions.worker_link import WorkerHandle
from app.settings import Settings
from app.storage import Storage
from app.storage import classes as queries

logger = logging.getLogger("nn_playground.classroom")

# Join codes: no 0/O, 1/I/L, easy to read aloud and to type; 32^6 ~ 10^9 codes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
MAX_CONTROLS = 64  # control messages a dashboard may leave unread before it is dropped
ATTACH_RETRIES = 24  # a learner whose session has no stored row yet is attached again, every
# checkpoint_seconds / 2 (within these bounds): its first checkpoint makes the row
ATTACH_RETRY_SECONDS = (0.25, 2.5)
OFFLINE = "offline"
SYNC_SECONDS = 1.0  # shared backends: a class's learners are re-read at most this often


def new_code() -> str:
    """A random join code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """A code as typed ("abc 123", "abc-123") in its stored form ("ABC123")."""
    return "".join(c for c in code.upper() if c not in " -")


@dataclass(eq=False)
class Watcher:
    """One dashboard websocket: the newest tile of each learner not sent yet, control messages."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    tiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    controls: deque[str] = field(default_factory=deque)
    overflow: bool = False
    closing: bool = False  # the class was deleted: close once the controls are sent

    def push_control(self, message: dict[str, Any]) -> None:
        """Queue a JSON message; a dashboard that lets MAX_CONTROLS pile up is dropped."""
        if len(self.controls) >= MAX_CONTROLS:
            self.overflow = True
        else:
            self.controls.append(json.dumps(message, allow_nan=False))
        self.event.set()

    def offer(self, tile: dict[str, Any]) -> None:
        """Latest wins: a tile replaces the one of the same learner that was not sent yet."""
        self.tiles[tile["session"]] = tile
        self.event.set()

    def take(self) -> list[dict[str, Any]]:
        """The tiles to send now, emptying the slot."""
        tiles, self.tiles = list(self.tiles.values()), {}
        return tiles


@dataclass(eq=False)
class ClassRoom:
    """A class in memory: who is in it, who watches it, the newest tile of each learner."""

    code: str
    title: str
    teacher_hash: str
    created_at: float
    preset: str | None
    learners: dict[str, str] = field(default_factory=dict)  # session id -> name, join order
    watchers: set[Watcher] = field(default_factory=set)
    tiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # newest tile per learner
    keys: dict[str, str | None] = field(default_factory=dict)  # what each tile was drawn from
    ticker: asyncio.Task[None] | None = None
    synced: float = field(default_factory=time.monotonic)  # learners last read (shared backends)

    def is_teacher(self, token: str | None) -> bool:
        """Whether `token` is this class's teacher token (constant-time compare of hashes)."""
        return bool(token) and hashes_match(token_hash(token or ""), self.teacher_hash)

    def roster(self) -> list[dict[str, str]]:
        """The learners as the dashboard lists them."""
        return [{"session": sid, "name": name} for sid, name in self.learners.items()]


class ClassHub:
    """Classes in memory, their dashboards, and the tile tasks."""

    def __init__(self, settings: Settings, manager: SessionManager, storage: Storage) -> None:
        self.settings = settings
        self.manager = manager
        self.storage = storage
        self.rooms: dict[str, ClassRoom] = {}
        self.lock = asyncio.Lock()  # loads and creates: one at a time (quotas, no double load)
        self.retries: set[asyncio.Task[None]] = set()
        self.attaching: set[tuple[str, str]] = set()  # (code, session) joined, row not written

    # ---- classes -------------------------------------------------------------------------

    async def room(self, code: str) -> ClassRoom | None:
        """The class with this code (loaded from the database on first use), or None."""
        code = normalize_code(code)
        room = self.rooms.get(code)
        if room is not None and self.manager.backend.shared:
            return await self.sync(room)
        if room is not None or not code or len(code) > 12:
            return room
        async with self.lock:
            room = self.rooms.get(code)
            if room is not None:
                return room
            row = await self.storage.call(queries.read_class, self.storage.engine, code)
            if row is None:
                return None
            learners = await self.storage.call(queries.read_learners, self.storage.engine, code)
            room = ClassRoom(row.code, row.title, row.teacher_hash, row.created_at, row.preset,
                             learners=dict(learners))
            self.rooms[code] = room
            return room

    async def sync(self, room: ClassRoom, force: bool = False) -> ClassRoom | None:
        """Shared backends (ray: many web replicas): a class changes through every replica,
        and the database is where they all write. At most every SYNC_SECONDS (or now, when
        forced): a class deleted elsewhere is dropped here (None), and its learners are
        re-read (those joined here whose row is not written yet stay); learners' sessions
        this replica has no handle of are found through the backend (manager.ensure)."""
        now = time.monotonic()
        if not force and now - room.synced < SYNC_SECONDS:
            return room
        room.synced = now
        engine = self.storage.engine
        if await self.storage.call(queries.read_class, engine, room.code) is None:
            if self.rooms.get(room.code) is room:
                self.rooms.pop(room.code, None)
                for watcher in room.watchers:
                    watcher.closing = True
                    watcher.push_control({"type": "removed",
                                          "detail": f"class {room.code} was deleted"})
            return None
        stored = dict(await self.storage.call(queries.read_learners, engine, room.code))
        for session_id, name in room.learners.items():
            if (room.code, session_id) in self.attaching:
                stored.setdefault(session_id, name)
        if stored != room.learners:
            for session_id in [s for s in room.learners if s not in stored]:
                room.keys.pop(session_id, None)
                room.tiles.pop(session_id, None)
            for session_id, name in stored.items():
                if room.learners.get(session_id) != name:
                    room.keys[session_id] = None  # drawn again (with its name)
            room.learners = stored
            self._tell_watchers(room)
        for session_id in stored:
            if session_id not in self.manager.handles:
                with contextlib.suppress(SessionCallError):
                    await self.manager.ensure(session_id)
        return room

    async def create(self, title: str, owner: str | None, address: str) -> tuple[ClassRoom, str]:
        """A new class and its teacher token (the only time the token exists on the server).

        Quotas: max_classes, max_classes_per_owner (the Authorization token, if any),
        max_classes_per_address, counted in the database (classes.owner_hash, address), so
        they hold across restarts; raises SessionCallError(429) naming the limit.
        """
        settings = self.settings
        async with self.lock:
            counts = await self.storage.call(
                queries.count_classes, self.storage.engine, owner, address
            )
            by_owner, by_address = counts.by_owner, counts.by_address
            for count, limit, what in (
                (counts.total, settings.max_classes, f"{counts.total} classes exist; "
                 "max_classes"),
                (by_owner, settings.max_classes_per_owner, f"this owner created "
                 f"{by_owner} classes; max_classes_per_owner"),
                (by_address, settings.max_classes_per_address, f"address {address} "
                 f"created {by_address} classes; max_classes_per_address"),
            ):
                if count >= limit:
                    raise self.manager.quota_error(
                        f"{what} = {limit} (delete one first: DELETE /api/classes/{{code}})"
                    )
            token = secrets.token_urlsafe(32)
            row = queries.ClassRow(new_code(), token_hash(token), title, time.time(), None)
            while not await self.storage.call(
                queries.insert_class, self.storage.engine, row, owner, address
            ):
                row = queries.ClassRow(new_code(), *_tail(row))  # the code was taken: another
            room = ClassRoom(row.code, row.title, row.teacher_hash, row.created_at, None)
            self.rooms[row.code] = room
        return room, token

    async def delete(self, room: ClassRoom) -> None:
        """Delete a class: its learners' sessions stay (detached), its dashboards close."""
        await self.storage.call(queries.delete_class, self.storage.engine, room.code)
        self.rooms.pop(room.code, None)
        for watcher in room.watchers:
            watcher.closing = True
            watcher.push_control({"type": "removed", "detail": f"class {room.code} was deleted"})
        self._tell_learners(room, {"type": "class", "event": "left", "class": room.code,
                                   "detail": f"class {room.code} was deleted by its teacher"})
        room.learners.clear()

    # ---- learners ------------------------------------------------------------------------

    async def join(self, room: ClassRoom, session_id: str, name: str) -> None:
        """Attach a session to the class (moving it out of any other), under its name.

        429 when the class has max_learners_per_class learners already.
        """
        limit = self.settings.max_learners_per_class
        if session_id not in room.learners and len(room.learners) >= limit:
            raise self.manager.quota_error(
                f"class {room.code} has {len(room.learners)} learners; "
                f"max_learners_per_class = {limit}"
            )
        for other in self.rooms.values():
            if other is not room and session_id in other.learners:
                self._forget_learner(other, session_id)
        room.learners[session_id] = name
        room.keys[session_id] = None  # the next tick draws its tile (with its new name)
        self._tell_watchers(room)
        if not await self.storage.call(
            queries.attach_learner, self.storage.engine, session_id, room.code, name
        ):
            # No stored row yet (its first checkpoint is due within checkpoint_seconds).
            self.attaching.add((room.code, session_id))
            task = asyncio.create_task(self._attach_later(room, session_id, name))
            self.retries.add(task)
            task.add_done_callback(self.retries.discard)
            task.add_done_callback(lambda _: self.attaching.discard((room.code, session_id)))

    async def _attach_later(self, room: ClassRoom, session_id: str, name: str) -> None:
        low, high = ATTACH_RETRY_SECONDS
        period = min(high, max(low, self.settings.checkpoint_seconds / 2))
        for _ in range(ATTACH_RETRIES):
            await asyncio.sleep(period)
            if room.learners.get(session_id) != name or self.rooms.get(room.code) is not room:
                return  # left, renamed or moved meanwhile: that write wins
            with contextlib.suppress(Exception):  # a database hiccup: try again
                if await self.storage.call(
                    queries.attach_learner, self.storage.engine, session_id, room.code, name
                ):
                    return
        logger.warning("learner not stored: its session has no row",
                       extra={"session": session_id, "class": room.code})

    async def leave(self, room: ClassRoom, session_id: str) -> None:
        """Detach a session from the class."""
        self._forget_learner(room, session_id)
        await self.storage.call(
            queries.detach_learner, self.storage.engine, session_id, room.code
        )

    def _forget_learner(self, room: ClassRoom, session_id: str) -> None:
        room.learners.pop(session_id, None)
        room.keys.pop(session_id, None)
        room.tiles.pop(session_id, None)
        self._tell_watchers(room)

    def _tell_watchers(self, room: ClassRoom) -> None:
        for watcher in room.watchers:
            watcher.tiles.clear()  # tiles of a learner who left must not follow the roster
            watcher.push_control({"type": "learners", "learners": room.roster()})
            for sid in room.learners:
                if sid in room.tiles:
                    watcher.offer(room.tiles[sid])

    def _tell_learners(self, room: ClassRoom, message: dict[str, Any]) -> None:
        """A message to every page watching a learner's session (their websockets)."""
        for session_id in room.learners:
            self.tell_learner(session_id, message)

    def tell_learner(self, session_id: str, message: dict[str, Any]) -> None:
        """A JSON message to every websocket client of one session, on every replica."""
        self.manager.backend.tell(self.manager, session_id, message)

    # ---- dashboards and tiles ------------------------------------------------------------

    def watch(self, room: ClassRoom) -> Watcher:
        """A new dashboard: hello with the roster and every tile so far, then live tiles."""
        watcher = Watcher()
        settings = self.settings
        watcher.push_control({
            "type": "hello", "protocol": 1,
            "class": {"code": room.code, "title": room.title, "tile_size": settings.tile_size,
                      "tile_fps": settings.tile_fps},
            "learners": room.roster(),
        })
        for tile in room.tiles.values():
            watcher.offer(tile)
        room.watchers.add(watcher)
        if room.ticker is None or room.ticker.done():
            room.ticker = asyncio.create_task(self._tick(room))
        return watcher

    def unwatch(self, room: ClassRoom, watcher: Watcher) -> None:
        """A dashboard closed; the last one stops the class's tile task."""
        room.watchers.discard(watcher)
        if not room.watchers and room.ticker is not None:
            room.ticker.cancel()
            room.ticker = None

    async def _tick(self, room: ClassRoom) -> None:
        """While dashboards are open: refresh the tiles, at most tile_fps times a second."""
        period = 1.0 / max(self.settings.tile_fps, 0.01)
        while room.watchers:
            began = time.monotonic()
            try:
                if self.manager.backend.shared and await self.sync(room) is None:
                    return  # deleted through another replica: its dashboards close
                await self.refresh(room)
            except Exception:  # a worker restarting, a session going: the next tick tries again
                logger.exception("class tiles failed", extra={"class": room.code})
            await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))

    async def refresh(self, room: ClassRoom) -> None:
        """Ask every worker for the changed tiles of the learners it holds; offer them."""
        by_worker: dict[WorkerHandle, dict[str, str | None]] = {}
        for session_id in room.learners:
            handle = self.manager.handles.get(session_id)
            if handle is None:
                if room.keys.get(session_id) != OFFLINE:
                    self._offer(room, self._offline(room, session_id))
                continue
            known = room.keys.get(session_id)
            by_worker.setdefault(handle.worker, {})[session_id] = (
                None if known == OFFLINE else known
            )
        if not by_worker:
            return
        payload = {"size": self.settings.tile_size, "extent": self.settings.grid_extent}
        replies = await asyncio.gather(
            *(self.manager.call_worker(worker, "class_tiles", {**payload, "sessions": asked})
              for worker, asked in by_worker.items()),
            return_exceptions=True,
        )
        for reply in replies:
            if isinstance(reply, SessionCallError):
                continue  # that worker is restarting: its learners keep their last tile
            if isinstance(reply, BaseException):
                raise reply
            for tile in reply:
                if tile["session"] in room.learners:
                    self._offer(room, self._entry(room, tile))

    def _offer(self, room: ClassRoom, entry: dict[str, Any]) -> None:
        session_id = entry["session"]
        room.keys[session_id] = entry.pop("key")
        room.tiles[session_id] = entry
        for watcher in room.watchers:
            watcher.offer(entry)

    @staticmethod
    def _entry(room: ClassRoom, tile: dict[str, Any]) -> dict[str, Any]:
        """A worker's tile as the dashboard gets it: with the name, the grid in base64."""
        return {**tile, "name": room.learners.get(tile["session"], ""),
                "grid": base64.b64encode(tile["grid"]).decode("ascii")}

    @staticmethod
    def _offline(room: ClassRoom, session_id: str) -> dict[str, Any]:
        """The tile of a learner whose session is not in memory (stored, or deleted)."""
        old = room.tiles.get(session_id, {})
        return {**old, "session": session_id, "key": OFFLINE, "status": OFFLINE,
                "name": room.learners.get(session_id, ""), "grid": old.get("grid")}


def _tail(row: queries.ClassRow) -> tuple[str, str, float, str | None]:
    """A class row's fields after its code."""
    return row.teacher_hash, row.title, row.created_at, row.preset
