"""A pure ASGI middleware that checks request bodies as they stream in, before they are parsed.

Two refusals, both made chunk by chunk (nothing is buffered here, nothing is parsed):
- 413 for a body over its route's limit, declared (Content-Length) or streamed (chunked);
- 400 for a JSON string escape of a lone UTF-16 surrogate (`"\\ud800"`): Python decodes it into
  a `str` that can never be encoded as UTF-8 again, so every later error message, log line or
  response carrying it would fail (a 500). RFC 8259 §8.2 calls such strings not interoperable.

A refusal raised inside `receive()` is an HTTPException: FastAPI re-raises those from its body
reading (any other exception there becomes its generic 400), so the 413 reaches the client.
"""

from __future__ import annotations

import json
import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sessions.export_binary import MEDIA_TYPE, compact_body_limit
from app.settings import Settings

# JSON of a CSV text: escaping its newlines (and any quote) at most doubles it, plus the keys.
CSV_JSON_FACTOR = 2
CSV_JSON_SLACK = 256
IMPORT_PATH = "/api/sessions/import"
GZIP_MAGIC = b"\x1f\x8b"  # an import body in the compact format (app/sessions/export_binary.py)
COMPACT_TYPE = MEDIA_TYPE.encode()
PARSE_CSV_PATH = "/api/datasets/parse-csv"

# A \uD800-\uDFFF escape (the backslash may itself be escaped: checked by counting).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_HIGH = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_ESCAPE = 6  # len(b"\\ud800")
_BACKSLASH_WINDOW = 64  # backslashes before a candidate that are looked at, at most


def body_limit(path: str, settings: Settings, content_type: bytes = b"") -> tuple[int, str]:
    """The byte limit of a request body on this path and the setting it comes from.

    A compact export (its media type declared) may be as large as the longest run this server
    can train makes it (export_binary.compact_body_limit), when that exceeds max_import_bytes.
    """
    if path == IMPORT_PATH:
        if content_type.split(b";")[0].strip().lower() == COMPACT_TYPE:
            limit = compact_body_limit(settings)
            if limit > settings.max_import_bytes:
                return limit, (
                    "the largest compact export of max_epoch_budget epochs of the widest net "
                    "(max_hidden_layers)"
                )
        return settings.max_import_bytes, "max_import_bytes"
    if path == PARSE_CSV_PATH:
        limit = settings.max_upload_bytes * CSV_JSON_FACTOR + CSV_JSON_SLACK
        return limit, f"max_upload_bytes ({CSV_JSON_FACTOR} x {settings.max_upload_bytes} + "\
            f"{CSV_JSON_SLACK} for the JSON around the CSV text)"
    return settings.max_body_bytes, "max_body_bytes"


def _escaped(data: bytes, index: int) -> bool:
    """True when the backslash at `index` starts an escape (an even run of backslashes before)."""
    run = 0
    while run < _BACKSLASH_WINDOW and index - run - 1 >= 0 and data[index - run - 1] == 0x5C:
        run += 1
    return run % 2 == 0


class SurrogateScan:
    """Finds a lone surrogate escape in a JSON text fed in chunks (pairs are fine)."""

    def __init__(self) -> None:
        self.buffer = b""  # undecided bytes, with up to _BACKSLASH_WINDOW bytes before them
        self.start = 0  # where in `buffer` the undecided part starts
        self.offset = 0  # bytes of the body before `buffer`

    def feed(self, chunk: bytes, final: bool) -> int | None:
        """The body offset of the first lone surrogate escape, or None (so far)."""
        data = self.buffer + chunk if self.buffer else chunk
        position = self.start
        while True:
            found = _SURROGATE.search(data, position)
            if found is None:
                position = max(position, len(data) - _ESCAPE + 1)
                break
            index = found.start()
            if not final and index + 2 * _ESCAPE > len(data):
                position = index  # its pair may be in the next chunk: decide then
                break
            if not _escaped(data, index):
                position = index + 1
                continue
            if _HIGH.match(data, index) and _LOW.match(data, index + _ESCAPE):
                position = index + 2 * _ESCAPE  # a pair: one character, fine
                continue
            return self.offset + index
        position = max(0, min(position, len(data)))
        keep = max(0, position - _BACKSLASH_WINDOW)
        self.buffer = data[keep:]
        self.start = position - keep
        self.offset += keep
        return None


def lone_surrogate_at(text: bytes) -> int | None:
    """The offset of the first lone surrogate escape in a whole JSON text, or None."""
    return SurrogateScan().feed(text, final=True)


class BodySizeLimit:
    """413 for a body over its route's limit; 400 for a lone surrogate escape in it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, path: str) -> int:
        """The byte limit of a request body on this path."""
        return body_limit(path, self.settings)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = next((v for n, v in scope["headers"] if n == b"content-type"), b"")
        limit, setting = body_limit(scope["path"], self.settings, content_type)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _refuse(send, 413, _too_large(int(value), limit, setting))
                return
        received = 0
        scan: SurrogateScan | None = SurrogateScan()
        started = False

        async def checked_receive() -> Message:
            nonlocal received, scan
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if received == 0 and body[:2] == GZIP_MAGIC and scope["path"] == IMPORT_PATH:
                    scan = None  # a compact export (binary, not JSON): nothing to scan
                received += len(body)
                if received > limit:
                    raise HTTPException(413, _too_large(received, limit, setting))
                at = scan.feed(body, final=not message.get("more_body", False)) if scan else None
                if at is not None:
                    raise HTTPException(400, _lone_surrogate(at))
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, checked_receive, watched_send)
        except HTTPException as error:
            # Raised where nothing turns it into a response (e.g. a plain ASGI route).
            if started:
                raise
            await _refuse(send, error.status_code, str(error.detail))


def _too_large(size: int, limit: int, setting: str) -> str:
    return f"request body is {size} bytes or more; the limit is {limit} bytes ({setting})"


def _lone_surrogate(at: int) -> str:
    return (
        f"malformed JSON: a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair) at "
        f"byte {at} is not a Unicode character"
    )


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
