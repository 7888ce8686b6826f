"""WS /ws/sessions/{id}: binary frames out, JSON commands in (docs/protocol.md).

Three tasks per client. A reader starts right after the upgrade, before the (possibly long)
subscription, so a client that closes while its hello frame is being built is noticed at once.
A handler turns the messages into commands once the subscription exists; a sender waits on the
subscriber's slot. Every send is bounded by `send_timeout_seconds` (and the server's protocol,
app/api/ws_protocol.py, aborts a connection whose unsent bytes wait longer than that), so a
client that stops reading is disconnected instead of stalling anything. When any task ends,
the others are cancelled and the subscription is dropped: a disconnect leaves no task behind.

Anyone with the id may watch; commands need the owner's token, given once per connection with
`{"type": "auth", "token": ...}`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from fastapi import APIRouter, WebSocket
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect

from app.api.limits import lone_surrogate_at
from app.api.routes.sessions import command_payload
from app.api.schemas import COMMAND_TYPES, Command
from app.ops import events
from app.sessions.frames import frame_bytes, split_rows
from app.sessions.manager import SessionCallError, SessionManager, Subscriber
from app.settings import Settings

router = APIRouter()
COMMANDS: TypeAdapter[Any] = TypeAdapter(Command)
NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
NOT_FOUND = 4404
MAX_INBOX = 16  # client messages read but not handled yet (then the reader waits)
MAX_TOKEN_CHARS = 256
MESSAGE_TYPES = ("auth", *COMMAND_TYPES)
READ_ONLY = (
    'read-only: send {"type": "auth", "token": "<owner token>"} first (commands need the '
    "token the session's create returned; anyone with the id may only watch)"
)


@dataclass
class Connection:
    """What one websocket client is allowed to do."""

    session_id: str
    owner: bool = False  # a valid owner token was presented with an `auth` message


@router.websocket("/ws/sessions/{session_id}")
async def stream_session(websocket: WebSocket, session_id: str) -> None:
    """Stream a session's frames to anyone with its id; accept its owner's commands."""
    manager: SessionManager = websocket.app.state.manager
    settings: Settings = websocket.app.state.settings
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.headers.get("host"), settings):
        # Closing before accept refuses the upgrade (HTTP 403): a foreign page may not drive it.
        await websocket.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    await websocket.accept()
    if len(session_id) > settings.max_id_length:
        # No session has such an id: answer at once, without asking the manager or echoing it.
        await _refuse(websocket, settings, NOT_FOUND, f"session id is {len(session_id)} "
                      f"characters; no session id is longer than {settings.max_id_length}")
        return
    connection = Connection(session_id)
    inbox_send, inbox_receive = anyio.create_memory_object_stream[str](MAX_INBOX)
    subscriber: Subscriber | None = None
    refusal: SessionCallError | None = None
    try:
        # anyio's task group (what Starlette itself uses): when one side ends, the scope
        # cancels the others, and nothing outlives this handler.
        async with anyio.create_task_group() as group:
            group.start_soon(_read, websocket, inbox_send, settings, group.cancel_scope)
            try:
                # Shielded: a cancelled subscribe would leave the worker counting a subscriber
                # that never existed; the reader still sees a close at once, and nothing more
                # is sent to that client.
                with anyio.CancelScope(shield=True):
                    watcher = await manager.subscribe(session_id)
            except SessionCallError as error:
                refusal = error
                group.cancel_scope.cancel()
            else:
                subscriber = watcher
                group.start_soon(_handle_all, inbox_receive, manager, connection, watcher,
                                 group.cancel_scope)
                group.start_soon(_send, websocket, watcher, settings, group.cancel_scope)
    finally:
        inbox_receive.close()  # the handler's, if it never started
        inbox_send.close()
        if subscriber is not None:
            manager.unsubscribe(subscriber)  # synchronous: safe even while being cancelled
            events.websocket_closed(manager, websocket, subscriber)  # count, log (app/ops)
    if refusal is not None:
        code = NOT_FOUND if refusal.status == 404 else POLICY_VIOLATION
        await _refuse(websocket, settings, code, str(refusal.detail))
    elif subscriber is not None and subscriber.ended_by_server:
        # Too slow, removed, lost or shutting down: close it ourselves, bounded.
        code = NORMAL_CLOSURE
        if subscriber.lost:
            code = INTERNAL_ERROR
        elif subscriber.overflow:
            code = POLICY_VIOLATION
        with anyio.move_on_after(settings.send_timeout_seconds), contextlib.suppress(Exception):
            await websocket.close(code=code)


async def _refuse(websocket: WebSocket, settings: Settings, code: int, detail: str) -> None:
    """An error message, then the close code; bounded, and quiet if the client is gone."""
    with anyio.move_on_after(settings.send_timeout_seconds), contextlib.suppress(Exception):
        await websocket.send_text(json.dumps(_error(None, detail)))
        await websocket.close(code=code)


def origin_allowed(origin: str, host: str | None, settings: Settings) -> bool:
    """Same-origin pages on an allowed Host, and the allow-list.

    A hostile page's browser sends its own Origin; with our Host it never matches, and with
    its own name as Host (DNS rebinding) the Host is not in `allowed_hosts`. A page we serve on
    any allowed host and port matches, which keeps `--port` and proxies working.
    """
    same_origin = (
        host is not None
        and _hostname(host) in _allowed_hosts(settings)
        and origin in (f"http://{host}", f"https://{host}")
    )
    return same_origin or origin in allowed_origins(settings)


def _hostname(host: str) -> str:
    """The name part of a Host header ("[::1]:8000" -> "::1", "a.example:80" -> "a.example")."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _allowed_hosts(settings: Settings) -> set[str]:
    hosts = set(getattr(settings, "allowed_hosts", ["127.0.0.1", "localhost", "::1"]))
    return hosts | {settings.host}


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


async def _read(
    websocket: WebSocket,
    inbox: ObjectSendStream[str],
    settings: Settings,
    scope: anyio.CancelScope,
) -> None:
    """Read client messages from the upgrade on; a close (or a broken socket) ends everything."""
    try:
        async with inbox:
            while True:
                try:
                    message = await websocket.receive()
                except (WebSocketDisconnect, RuntimeError):
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    await inbox.send(json.dumps({"type": None, "binary": True}))
                    continue
                limit = settings.max_ws_message_bytes
                if len(text) > limit:
                    # The server's ws_max_size closes bigger messages (1009) before they are
                    # buffered; this guards servers started without it (e.g. the TestClient).
                    text = json.dumps({"type": None, "too_long": len(text), "limit": limit})
                await inbox.send(text)
    finally:
        scope.cancel()


async def _handle_all(
    inbox: ObjectReceiveStream[str],
    manager: SessionManager,
    connection: Connection,
    subscriber: Subscriber,
    scope: anyio.CancelScope,
) -> None:
    """Handle the client's messages in order (the reader may already have queued some)."""
    try:
        async with inbox:
            async for text in inbox:
                await _handle(text, manager, connection, subscriber)
    finally:
        scope.cancel()


async def _handle(
    text: str, manager: SessionManager, connection: Connection, subscriber: Subscriber
) -> None:
    if lone_surrogate_at(text.encode("utf-8", "surrogatepass")) is not None:
        subscriber.push_control(_error(None, "message is not valid JSON text: a lone UTF-16 "
                                       "surrogate escape (\\ud800-\\udfff) is not a character"))
        return
    try:
        raw = json.loads(text)
    except ValueError as error:
        subscriber.push_control(_error(None, f"message is not valid JSON: {error}"))
        return
    if isinstance(raw, dict) and raw.get("type") is None and "binary" in raw:
        subscriber.push_control(_error(None, "expected a JSON text message, got binary"))
        return
    if isinstance(raw, dict) and raw.get("type") is None and "too_long" in raw:
        subscriber.push_control(_error(None, f"message is {raw['too_long']} characters; "
                                       f"max_ws_message_bytes = {raw['limit']}"))
        return
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    elif isinstance(request_id, str) and len(request_id) > 64:
        request_id = None  # never echo a long id (the schema caps it at 64 characters)
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "auth":
        _authorize(raw, manager, connection, subscriber, request_id)
        return
    if kind not in COMMAND_TYPES:
        shown = repr(kind)[:70] if isinstance(kind, str) else type(kind).__name__
        subscriber.push_control(_error(request_id, f"unknown message type {shown}; expected "
                                       f"one of: {', '.join(MESSAGE_TYPES)}"))
        return
    if not connection.owner:
        subscriber.push_control(_error(request_id, READ_ONLY))
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


def _authorize(
    raw: dict[str, Any],
    manager: SessionManager,
    connection: Connection,
    subscriber: Subscriber,
    request_id: Any,
) -> None:
    """`{"type": "auth", "token": ...}`: the owner's token makes this connection a driver."""
    token = raw.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        subscriber.push_control(_error(request_id, "auth needs \"token\": the owner token "
                                       "(a string) that creating the session returned"))
        return
    if not manager.authorize(connection.session_id, token):
        subscriber.push_control(_error(request_id, "this token does not own session "
                                       f"{connection.session_id!r}; watching stays read-only"))
        return
    connection.owner = True
    subscriber.push_control({"type": "auth", "owner": True})


def _error(request_id: Any, detail: Any) -> dict[str, Any]:
    if isinstance(detail, list):  # pydantic errors from the worker: one readable line
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail
        )
    return {"type": "error", "id": request_id, "detail": str(detail)[:1000]}
