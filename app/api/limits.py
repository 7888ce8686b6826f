"""A pure ASGI middleware that refuses request bodies above a size before they are buffered."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

# JSON of the largest allowed upload (CSV text or max_samples points) stays well under this.
JSON_OVERHEAD = 4
IMPORT_PATH = "/api/sessions/import"


class BodyTooLarge(Exception):
    """Raised inside receive() when a streamed body passes the limit."""


class BodySizeLimit:
    """413 for a body over the limit: max_upload_bytes * 4, or max_import_bytes for imports."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, path: str) -> int:
        """The byte limit of a request body on this path."""
        if path == IMPORT_PATH:
            return self.settings.max_import_bytes
        return self.settings.max_upload_bytes * JSON_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, int(value), limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _too_large(send, received, limit)


async def _too_large(send: Send, size: int, limit: int) -> None:
    body = json.dumps({"detail": f"request body is {size} bytes or more; the limit is {limit}"})
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json")],
    })
    await send({"type": "http.response.body", "body": body.encode()})
