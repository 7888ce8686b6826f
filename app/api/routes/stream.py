"""WS /ws/sessions/{id}: binary frames out, JSON commands in (docs/protocol.md).

Two tasks per client: a receiver that turns messages into commands, and a sender that waits on
the subscriber's slot. Every send is bounded by `send_timeout_seconds`, so a client that stops
reading is disconnected instead of stalling anything; when either task ends, the other is
cancelled and the subscription is dropped, so a disconnect leaves no task behind.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect

from app.api.routes.sessions import command_payload
from app.api.schemas import COMMAND_TYPES, Command
from app.ops import events
from app.sessions.frames import frame_bytes, split_rows
from app.sessions.manager import SessionCallError, SessionManager, Subscriber
from app.settings import Settings

router = APIRouter()
COMMANDS: TypeAdapter[Any] = TypeAdapter(Command)
POLICY_VIOLATION = 1008
NOT_FOUND = 4404


@router.websocket("/ws/sessions/{session_id}")
async def stream_session(websocket: WebSocket, session_id: str) -> None:
    """Stream a session's frames and accept its commands."""
    manager: SessionManager = websocket.app.state.manager
    settings: Settings = websocket.app.state.settings
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.headers.get("host"), settings):
        # Closing before accept refuses the upgrade (HTTP 403): a foreign page may not drive it.
        await websocket.close(code=POLICY_VIOLATION, reason=f"origin {origin!r} not allowed")
        return
    await websocket.accept()
    try:
        subscriber = await manager.subscribe(session_id)
    except SessionCallError as error:
        with anyio.move_on_after(settings.send_timeout_seconds):
            await websocket.send_text(json.dumps(_error(None, error.detail)))
            await websocket.close(code=NOT_FOUND if error.status == 404 else POLICY_VIOLATION)
        return
    try:
        # anyio's task group (what Starlette itself uses): when either side ends, the scope
        # cancels the other, and nothing outlives this handler.
        async with anyio.create_task_group() as group:
            group.start_soon(_receive, websocket, manager, subscriber, settings, group.cancel_scope)
            group.start_soon(_send, websocket, subscriber, settings, group.cancel_scope)
    finally:
        manager.unsubscribe(subscriber)  # synchronous: safe even while being cancelled
        events.websocket_closed(manager, websocket, subscriber)  # count, log (app/ops)
    if subscriber.ended_by_server:
        # Too slow, removed, or shutting down: close it ourselves, bounded.
        code = POLICY_VIOLATION if subscriber.overflow else 1000
        with anyio.move_on_after(settings.send_timeout_seconds), contextlib.suppress(Exception):
            await websocket.close(code=code)


def origin_allowed(origin: str, host: str | None, settings: Settings) -> bool:
    """Same-origin pages (the Origin names the Host the browser connected to) and the allow-list.

    A hostile page's browser sends its own Origin with our Host, so it never matches; a page we
    serve on any host or port does, which keeps `--port` and proxies working.
    """
    same_origin = host is not None and origin in (f"http://{host}", f"https://{host}")
    return same_origin or origin in allowed_origins(settings)


def allowed_origins(settings: Settings) -> set[str]:
    """The allow-list plus the server's own configured address (so `--port` keeps the page)."""
    own = {f"http://{host}:{settings.port}" for host in (settings.host, "127.0.0.1", "localhost")}
    return set(settings.allowed_origins) | own


async def _send(
    websocket: WebSocket, subscriber: Subscriber, settings: Settings, scope: anyio.CancelScope
) -> None:
    """Wait for the slot, then send control messages and the merged frame, each bounded."""
    timeout = settings.send_timeout_seconds
    try:
        while not (subscriber.overflow or subscriber.closing):
            await subscriber.event.wait()
            subscriber.event.clear()
            if subscriber.overflow:
                break  # too slow to keep up: disconnect rather than buffer
            while subscriber.controls:
                with anyio.fail_after(timeout):
                    await websocket.send_text(subscriber.controls.popleft())
            part = subscriber.take()
            if part is not None:
                while True:
                    older, part = split_rows(part, settings.max_rows_per_frame)
                    message = frame_bytes(older or part, subscriber.seq)
                    subscriber.seq += 1
                    with anyio.fail_after(timeout):
                        await websocket.send_bytes(message)
                    if older is None:
                        break
        subscriber.ended_by_server = True
    except Exception:
        # A client that stops reading (TimeoutError), a socket already gone, or a frame that
        # cannot be encoded: end this one connection, never the session or the server.
        subscriber.overflow = subscriber.ended_by_server = True
    finally:
        scope.cancel()


async def _receive(
    websocket: WebSocket,
    manager: SessionManager,
    subscriber: Subscriber,
    settings: Settings,
    scope: anyio.CancelScope,
) -> None:
    """Turn each client message into a command; answer errors without dropping the session."""
    try:
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                subscriber.push_control(_error(None, "expected a JSON text message, got binary"))
                continue
            limit = settings.max_ws_message_bytes
            if len(text) > limit:
                detail = f"message is {len(text)} characters; max_ws_message_bytes = {limit}"
                subscriber.push_control(_error(None, detail))
                continue
            await _handle(text, manager, subscriber)
    finally:
        scope.cancel()


async def _handle(text: str, manager: SessionManager, subscriber: Subscriber) -> None:
    try:
        raw = json.loads(text)
    except ValueError as error:
        subscriber.push_control(_error(None, f"message is not valid JSON: {error}"))
        return
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in COMMAND_TYPES:
        subscriber.push_control(_error(request_id, f"unknown message type {kind!r}; expected "
                                       f"one of: {', '.join(COMMAND_TYPES)}"))
        return
    try:
        command = COMMANDS.validate_python(raw)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or kind}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        subscriber.push_control(_error(request_id, f"invalid {kind} message: {details}"))
        return
    try:
        result = await manager.call(subscriber.session_id, "command", command_payload(command))
    except SessionCallError as error:
        subscriber.push_control(_error(request_id, error.detail))
        return
    if kind == "predict":
        subscriber.push_control({"type": "prediction", "id": request_id, **result})
    else:
        subscriber.push_control({"type": "ack", "id": request_id, "command": kind,
                                 "session": result})


def _error(request_id: Any, detail: Any) -> dict[str, Any]:
    if isinstance(detail, list):  # pydantic errors from the worker: one readable line
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail
        )
    return {"type": "error", "id": request_id, "detail": str(detail)}
