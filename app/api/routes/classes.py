"""The classroom over REST and websocket (docs/protocol.md "Classroom").

A teacher creates a class (`POST /api/classes`: a short join code and a teacher token, shown
once; only its SHA-256 is stored). Learners join with their own session (their owner token);
the teacher's dashboard (`/class/{code}`, `WS /ws/classes/{code}`, the teacher token first)
shows every learner's boundary as a live tile; the teacher pushes a preset (a config change) to
every learner's session, or pauses them all. Everything a teacher does needs the teacher token
(`Authorization: Bearer <teacher_token>`): 401 without one, 403 with another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import unicodedata
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError
from starlette.websockets import WebSocketDisconnect

from app.api.deps import BEARER, CallerDep, ManagerDep, SettingsDep, require_owner
from app.api.owners import MAX_TOKEN_CHARS, bearer_token
from app.api.raw_bodies import raw_body
from app.api.routes.stream import origin_allowed
from app.classroom.hub import ClassHub, ClassRoom, Watcher, normalize_code
from app.sessions.config import SessionConfig, SessionConfigUpdate
from app.sessions.manager import SessionCallError, SessionManager
from app.settings import Settings
from app.storage.classes import save_preset

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[3] / "templates")
POLICY_VIOLATION = 1008
NOT_FOUND = 4404
FORBIDDEN = 4403
TOO_MANY = 4429

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such class (or session)"},
    422: {"description": "Invalid input: the detail names the field, the value and the limit"},
    429: {"description": "A quota (max_classes, max_classes_per_owner, max_classes_per_address, "
                         "max_learners_per_class) is reached; see Retry-After"},
}
TEACHER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No teacher token (Authorization: Bearer <teacher_token>)"},
    403: {"description": "The token is not this class's teacher token"},
}
LEARNER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No owner token of the session (Authorization: Bearer <owner_token>)"},
    403: {"description": "The session belongs to another owner"},
}

router = APIRouter(tags=["classroom"])


# ---- schemas -------------------------------------------------------------------------------


class ClassCreate(BaseModel):
    """A new class: its title, as the dashboard and the learners see it."""

    model_config = {"extra": "forbid"}
    title: str = Field("Class", min_length=1, max_length=120)


class ClassCreated(BaseModel):
    """The new class: the join code learners type, and the teacher token (shown only now)."""

    code: str
    title: str
    teacher_token: str
    url: str


class ClassJoin(BaseModel):
    """A learner joins with one of their sessions, under a display name."""

    model_config = {"extra": "forbid"}
    session_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=60)


class ClassJoined(BaseModel):
    """The class a session joined."""

    code: str
    title: str
    session_id: str
    name: str


class LearnerPublic(BaseModel):
    """A learner as the teacher's class listing shows it."""

    session_id: str
    name: str
    live: bool  # in a worker now (else stored, or deleted by its owner)


class ClassPublic(BaseModel):
    """A class as its teacher reads it."""

    code: str
    title: str
    created_at: float
    url: str
    preset: dict[str, Any] | None
    learners: list[LearnerPublic]


class LearnerFailure(BaseModel):
    """A learner's session that refused what the teacher pushed."""

    session_id: str
    name: str
    status: int
    detail: Any


class ClassAction(BaseModel):
    """What a push did: the sessions it reached and the ones that refused."""

    done: list[str]
    failed: list[LearnerFailure]
    preset: dict[str, Any] | None = None


# ---- dependencies --------------------------------------------------------------------------


def hub_of(state: Any) -> ClassHub:
    """The app's classroom hub, made on first use (on the event loop, so only once)."""
    manager: SessionManager = state.manager
    hub: ClassHub | None = getattr(state, "classroom", None)
    if hub is None or hub.manager is not manager:  # a new lifespan: a new manager
        hub = ClassHub(state.settings, manager, state.storage)
        state.classroom = hub
    return hub


async def get_hub(request: Request) -> ClassHub:
    """The classroom hub (app.state.classroom)."""
    return hub_of(request.app.state)


HubDep = Annotated[ClassHub, Depends(get_hub)]


async def get_room(code: str, hub: HubDep) -> ClassRoom:
    """The class of the path's code, or 404."""
    room = await hub.room(code)
    if room is None:
        shown = code if len(code) <= 16 else f"{code[:16]}…"
        raise HTTPException(404, f"class {shown!r} not found (a join code is 6 letters and "
                            "digits, from the teacher)")
    return room


RoomDep = Annotated[ClassRoom, Depends(get_room)]


async def get_taught_room(room: RoomDep, request: Request) -> ClassRoom:
    """The class, if the caller presents its teacher token: 404, then 401 or 403."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise HTTPException(401, f"class {room.code} needs its teacher token: send "
                            "'Authorization: Bearer <teacher_token>' (POST /api/classes "
                            "returned it)", headers=BEARER)
    if not room.is_teacher(token):
        raise HTTPException(403, f"this token is not the teacher token of class {room.code}; "
                            "only its teacher may see or change it")
    return room


TaughtRoomDep = Annotated[ClassRoom, Depends(get_taught_room)]


def learner_name(raw: str) -> str:
    """A display name without control characters and surrounding spaces (422 if none is left)."""
    name = "".join(c for c in raw if unicodedata.category(c)[0] != "C").strip()
    if not name:
        raise RequestValidationError([{
            "loc": ["body", "name"], "type": "value_error", "input": raw[:60],
            "msg": "a name needs a visible character (1 to 60 characters)",
        }])
    return name


# ---- REST ----------------------------------------------------------------------------------


@router.post("/api/classes", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_class(body: ClassCreate, caller: CallerDep, hub: HubDep) -> ClassCreated:
    """A new class: a short join code and the teacher token (shown once; keep it).

    Quotas: max_classes, max_classes_per_owner (of the Authorization token, if one is sent),
    max_classes_per_address.
    """
    room, token = await hub.create(body.title.strip() or "Class", caller.token_hash,
                                   caller.address)
    return ClassCreated(code=room.code, title=room.title, teacher_token=token,
                        url=f"/class/{room.code}")


@router.get("/api/classes/{code}", responses={**ERRORS, **TEACHER_ERRORS})
async def read_class(room: TaughtRoomDep, manager: ManagerDep) -> ClassPublic:
    """The class and its learners (teacher only)."""
    if manager.backend.shared:  # learners' sessions of other replicas: found, so `live` holds
        await asyncio.gather(*(_live_handle(manager, sid) for sid in room.learners),
                             return_exceptions=True)
    return ClassPublic(
        code=room.code, title=room.title, created_at=room.created_at, url=f"/class/{room.code}",
        preset=json.loads(room.preset) if room.preset else None,
        learners=[LearnerPublic(session_id=sid, name=name, live=sid in manager.handles)
                  for sid, name in room.learners.items()],
    )


@router.delete("/api/classes/{code}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**ERRORS, **TEACHER_ERRORS})
async def delete_class(room: TaughtRoomDep, hub: HubDep) -> Response:
    """Delete the class (teacher only); its learners' sessions stay, detached."""
    await hub.delete(room)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/classes/{code}/join", responses={**ERRORS, **LEARNER_ERRORS})
async def create_learner(
    body: ClassJoin, room: RoomDep, caller: CallerDep, hub: HubDep, manager: ManagerDep
) -> ClassJoined:
    """Attach one of the caller's sessions to the class under a display name (its owner token).

    A session is in one class at most: joining another moves it. max_learners_per_class.
    """
    name = learner_name(body.name)
    handle = await _live_handle(manager, body.session_id)
    require_owner(caller, handle.owner, f"session {body.session_id!r}")
    await hub.join(room, body.session_id, name)
    return ClassJoined(code=room.code, title=room.title, session_id=body.session_id, name=name)


@router.delete("/api/classes/{code}/learners/{session_id}",
               status_code=status.HTTP_204_NO_CONTENT,
               responses={**ERRORS, **LEARNER_ERRORS})
async def delete_learner(
    session_id: str, room: RoomDep, request: Request, caller: CallerDep, hub: HubDep,
    manager: ManagerDep,
) -> Response:
    """Take a session out of the class: its owner (leaving) or the teacher."""
    if session_id not in room.learners:
        raise HTTPException(404, f"session {session_id[:64]!r} is not in class {room.code}")
    teacher = room.is_teacher(bearer_token(request.headers.get("authorization")))
    if not teacher:
        handle = manager.handles.get(session_id)
        require_owner(caller, handle.owner if handle else "", f"session {session_id!r}")
    await hub.leave(room, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/classes/{code}/preset",
    responses={**ERRORS, **TEACHER_ERRORS, 413: {"description": "Over max_preset_bytes"}},
    openapi_extra=raw_body("/api/classes/{code}/preset", "post", SessionConfigUpdate),
)
async def create_preset(
    room: TaughtRoomDep, request: Request, hub: HubDep, settings: SettingsDep
) -> ClassAction:
    """Push a config change (a preset) to every learner's session (teacher only).

    The body is a session PATCH body; it is validated once (a 422 reaches nobody), remembered
    as the class's preset, then applied to each learner's session; the pages watching them are
    told (`{"type": "class", "event": "preset"}`).
    """
    body = await request.body()
    if len(body) > settings.max_preset_bytes:
        raise HTTPException(413, f"a preset is {len(body)} bytes; max_preset_bytes = "
                            f"{settings.max_preset_bytes}")
    # In a thread: up to max_preset_bytes of JSON (a preset may carry points).
    changes, errors = await asyncio.to_thread(validate_preset, body)
    if errors:
        raise RequestValidationError([{**e, "loc": ["body", *e["loc"]]} for e in errors])
    if not changes:
        raise RequestValidationError([{
            "loc": ["body"], "type": "value_error", "input": {},
            "msg": "a preset needs at least one config field (a session PATCH body)",
        }])
    preset = json.dumps(changes, allow_nan=False)
    await hub.storage.call(save_preset, hub.storage.engine, room.code, preset)
    room.preset = preset
    action = await _each_learner(hub, room, "update", changes)
    action.preset = changes
    return action


@router.post("/api/classes/{code}/pause", responses={**ERRORS, **TEACHER_ERRORS})
async def create_pause(room: TaughtRoomDep, hub: HubDep) -> ClassAction:
    """Pause every learner's session (teacher only)."""
    return await _each_learner(hub, room, "command", {"type": "pause"})


def validate_preset(body: bytes) -> tuple[dict[str, Any], list[Any]]:
    """A preset's changes and its errors: a PATCH body's, plus the limits a whole config
    checks (e.g. max_speed, max_samples). Rules that depend on a learner's own config (a loss
    that must fit its problem) are its worker's to answer, per learner (`failed`)."""
    try:
        changes: dict[str, Any] = SessionConfigUpdate.model_validate_json(body).model_dump(
            exclude_unset=True
        )
    except ValidationError as error:
        return {}, list(error.errors(include_url=False))
    try:
        SessionConfig.model_validate(changes)
    except ValidationError as error:
        return changes, list(error.errors(include_url=False))
    return changes, []


async def _live_handle(manager: SessionManager, session_id: str) -> Any:
    """A session's handle, restoring a stored one first when the manager can (404 if none)."""
    ensure = getattr(manager, "ensure", None)
    try:
        if ensure is not None:
            await ensure(session_id)
        return manager.get(session_id)
    except SessionCallError as error:
        raise HTTPException(error.status, error.detail) from None


async def _each_learner(hub: ClassHub, room: ClassRoom, op: str, payload: Any) -> ClassAction:
    """Run one operation on every learner's session at once; tell the pages watching them."""
    learners = list(room.learners.items())

    async def one(session_id: str) -> Any:
        if op == "update":
            await _live_handle(hub.manager, session_id)  # a stored session comes back first
        elif session_id not in hub.manager.handles and not hub.manager.backend.shared:
            return None  # not in memory: stored sessions are paused already
        return await hub.manager.call(session_id, op, payload)

    results = await asyncio.gather(*(one(sid) for sid, _ in learners), return_exceptions=True)
    done, failed = [], []
    event = "preset" if op == "update" else "pause"
    for (session_id, name), result in zip(learners, results, strict=True):
        if isinstance(result, SessionCallError | HTTPException):
            code = result.status if isinstance(result, SessionCallError) else result.status_code
            failed.append(LearnerFailure(session_id=session_id, name=name, status=code,
                                         detail=result.detail))
        elif isinstance(result, BaseException):
            raise result
        else:
            done.append(session_id)
            if isinstance(result, dict):
                hub.tell_learner(session_id, {"type": "class", "event": event,
                                              "class": room.code, "title": room.title,
                                              "session": result})
    return ClassAction(done=done, failed=failed)


# ---- the dashboard -------------------------------------------------------------------------


@router.get("/class", response_class=HTMLResponse, include_in_schema=False)
async def read_class_start(request: Request) -> HTMLResponse:
    """The classroom page without a class: create one."""
    return TEMPLATES.TemplateResponse(request, "class.html", {"code": ""})


@router.get("/class/{code}", response_class=HTMLResponse, include_in_schema=False)
async def read_class_page(code: str, request: Request) -> HTMLResponse:
    """The teacher's dashboard (its data needs the teacher token: the page asks for it)."""
    return TEMPLATES.TemplateResponse(request, "class.html", {"code": normalize_code(code)[:12]})


@router.websocket("/ws/classes/{code}")
async def stream_class(websocket: WebSocket, code: str) -> None:
    """The class's tiles for its teacher: first message {"type": "auth", "token": ...}."""
    state = websocket.app.state
    settings: Settings = state.settings
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.headers.get("host"), settings):
        await websocket.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    await websocket.accept()
    hub = hub_of(state)
    token = await _auth_message(websocket, settings)
    room = await hub.room(code)
    if room is None:
        await _refuse(websocket, settings, NOT_FOUND, f"class {code[:16]!r} not found")
        return
    if token is None or not room.is_teacher(token):
        await _refuse(websocket, settings, FORBIDDEN, (
            f"class {room.code}'s dashboard needs its teacher token: send "
            '{"type": "auth", "token": "<teacher_token>"} first' if token is None else
            f"this token is not the teacher token of class {room.code}; only its teacher "
            "may watch the class"))
        return
    if len(room.watchers) >= settings.max_class_watchers:
        await _refuse(websocket, settings, TOO_MANY, f"class {room.code} has "
                      f"{len(room.watchers)} dashboards open; max_class_watchers = "
                      f"{settings.max_class_watchers}")
        return
    watcher = hub.watch(room)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_read_until_closed, websocket, group.cancel_scope)
            group.start_soon(_send_tiles, websocket, watcher, settings, group.cancel_scope)
    finally:
        hub.unwatch(room, watcher)
    with anyio.move_on_after(settings.send_timeout_seconds), contextlib.suppress(Exception):
        await websocket.close(code=POLICY_VIOLATION if watcher.overflow else 1000)


async def _auth_message(websocket: WebSocket, settings: Settings) -> str | None:
    """The token of the client's first message, if it is an auth message (else None)."""
    with anyio.move_on_after(settings.send_timeout_seconds):
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        text = message.get("text")
        if not isinstance(text, str) or len(text) > 2 * MAX_TOKEN_CHARS:
            return None
        with contextlib.suppress(ValueError):
            raw = json.loads(text)
            token = raw.get("token") if isinstance(raw, dict) else None
            if raw.get("type") == "auth" and isinstance(token, str) and token:
                return token
    return None


async def _refuse(websocket: WebSocket, settings: Settings, code: int, detail: str) -> None:
    """An error message, then the close code; bounded, and quiet if the client is gone."""
    with anyio.move_on_after(settings.send_timeout_seconds), contextlib.suppress(Exception):
        await websocket.send_text(json.dumps({"type": "error", "detail": detail}))
        await websocket.close(code=code, reason=detail[:120])


async def _read_until_closed(websocket: WebSocket, scope: anyio.CancelScope) -> None:
    """Read (and ignore) what the dashboard sends until it closes; then end the others."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        scope.cancel()


async def _send_tiles(
    websocket: WebSocket, watcher: Watcher, settings: Settings, scope: anyio.CancelScope
) -> None:
    """Send control messages, then the pending tiles in one message, each send bounded."""
    try:
        while not watcher.overflow:
            await watcher.event.wait()
            watcher.event.clear()
            while watcher.controls and not watcher.overflow:
                with anyio.fail_after(settings.send_timeout_seconds):
                    await websocket.send_text(watcher.controls.popleft())
            if watcher.closing:
                return  # the class was deleted: its "removed" message went out
            tiles = watcher.take()
            if tiles:
                with anyio.fail_after(settings.send_timeout_seconds):
                    await websocket.send_text(
                        json.dumps({"type": "tiles", "tiles": tiles}, allow_nan=False)
                    )
    except Exception:
        watcher.overflow = True  # too slow, or gone: end this dashboard, never the class
    finally:
        scope.cancel()
