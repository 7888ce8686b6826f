"""uvicorn's websocket protocol with a bounded send path, so a client that stops reading is cheap.

- The accepted socket's kernel send buffer is `ws_send_buffer_bytes` (SO_SNDBUF; Linux then
  stops auto-tuning it up to megabytes per socket).
- The transport pauses as soon as anything waits in user space (write buffer limit 0), and from
  that first unsent byte a deadline of `send_timeout_seconds` runs; data taken by the kernel
  resets it. At the deadline the connection is reset (SO_LINGER 0, then abort): its buffers are
  freed at once and the app's pending send fails, instead of a close that waits for a client
  that never reads to drain them.
- Messages over `max_ws_message_bytes` are refused by the websocket parser (close 1009) before
  they are buffered whole (`ws_max_size`, set by `uvicorn_options`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import socket
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.settings import Settings

TRIM_DELAY = 0.5  # seconds after a reset before the heap is trimmed (once per burst)


def _load_trim() -> Any:
    """glibc's malloc_trim, or None elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


_malloc_trim = _load_trim()
_trim_pending = False


def _trim_soon(loop: asyncio.AbstractEventLoop) -> None:
    """Give freed send buffers back to the OS: glibc keeps freed heap pages otherwise, so the
    RSS of a burst of slow clients would stay after they are gone."""
    global _trim_pending
    if _malloc_trim is None or _trim_pending:
        return
    _trim_pending = True

    def trim() -> None:
        global _trim_pending
        _trim_pending = False
        # In a thread: trimming a few hundred MB of heap takes milliseconds, and ctypes
        # releases the GIL for the call, so the event loop never waits for it.
        loop.run_in_executor(None, _malloc_trim, 0)

    loop.call_later(TRIM_DELAY, trim)


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    """A websocket connection whose unsent bytes may wait at most `send_timeout` seconds."""

    send_buffer_bytes = 65_536
    send_timeout = 10.0
    slow_closes = 0  # connections reset for not reading (all servers of this class)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.stall_timer: asyncio.TimerHandle | None = None
        sock = transport.get_extra_info("socket")
        if sock is not None and self.send_buffer_bytes > 0:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        if isinstance(transport, asyncio.WriteTransport):
            # Pause at the first byte the kernel did not take: the deadline starts there.
            transport.set_write_buffer_limits(high=0, low=0)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stall_timer is None:
            self.stall_timer = self.loop.call_later(self.send_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)

    def _cancel_stall_timer(self) -> None:
        timer = getattr(self, "stall_timer", None)
        if timer is not None:
            timer.cancel()
            self.stall_timer = None

    def _stalled(self) -> None:
        """Unsent bytes waited send_timeout seconds: reset the connection, free its buffers."""
        self.stall_timer = None
        type(self).slow_closes += 1
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # A reset, not a FIN: the kernel drops the unsent bytes instead of keeping an
                # orphan socket that probes a zero window for minutes.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.logger.warning(
            "websocket %s: nothing read for %.1f s; connection reset (send_timeout_seconds)",
            "{}:{}".format(*self.client) if self.client else "?", self.send_timeout,
        )
        self.transport.abort()
        _trim_soon(self.loop)


def websocket_protocol(settings: Settings) -> type[BoundedWebSocketProtocol]:
    """The protocol class for a server with these settings."""
    return type(
        "BoundedWebSocketProtocol",
        (BoundedWebSocketProtocol,),
        {
            "send_buffer_bytes": settings.ws_send_buffer_bytes,
            "send_timeout": settings.send_timeout_seconds,
        },
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The websocket options of uvicorn.run / uvicorn.Config for these settings."""
    return {
        "ws": websocket_protocol(settings),
        "ws_max_size": settings.max_ws_message_bytes,
        "ws_per_message_deflate": False,
    }
