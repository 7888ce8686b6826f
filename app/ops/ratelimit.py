"""Requests per second per client address: a pure ASGI middleware.

Two moving windows per address (`MovingWindows`, one per app): `rate_limit_per_second`
sustained over `rate_limit_window_seconds`, and at most `rate_limit_burst` (never below the
sustained rate) in any one second. They count as the `limits` library's MovingWindowRateLimiter
does (tests/ops/test_ops_moving_window.py checks the decisions and Retry-After against it),
without its in-memory storage, which started a new expiry thread (`threading.Timer`) on the
event loop for almost every request and waited for it to start: ~15% of the loop's time
serving job polls, and a stall whenever the machine was busy (bench/request_cost.py).

Only /api/* requests and /ws/* connects count; the page, /static, /docs, /health and /metrics
never do, so a limited client still loads the page and an operator's probes always answer.

Over a limit: HTTP 429 with `Retry-After` (whole seconds until the window frees a slot, from
the limiter's window stats) and `{"detail": "... rate_limit_per_second = 20 ..."}`; a websocket
connect gets the same 429 as its upgrade answer (or close 1013 "try again later" when the
server cannot send a denial response). 429s are logged (app/ops/logs.py), at most one line per
address per second, with the count of refusals it stands for.

The windows live in this process: with several web replicas (the ray backend, issue 12) each
counts only what reaches it, so N replicas alone would let N times the rate through. The sum is
limited in front of them, where every request passes once: deploy/nginx.conf's `limit_req`
zones (per address and per owner token, the same figures, a JSON 429 with Retry-After;
tests/scale/test_scale_nginx.py), with no extra hop and no shared state for a request to wait
on. This limiter stays on as each replica's own backstop (and the only limit without a proxy).

The address is the TCP peer, unless that peer is one of `trusted_proxies`: then it is the
rightmost X-Forwarded-For entry that is not itself a trusted proxy. IPv6 addresses are keyed by
their /64, which one host usually owns whole.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app.ops.logs import log_event, logger
from app.settings import Settings

LIMITED_PREFIXES = ("/api/", "/ws/")
TRY_AGAIN_LATER = 1013  # websocket close code when a denial response cannot be sent
RATE_LIMITED = "nn.rate_limited"  # scope key: this 429 came from the limiter (metrics, logs)
LOG_EVERY_SECONDS = 1.0  # at most one rate_limited log line per address per second
MAX_LOGGED_ADDRESSES = 10_000  # addresses remembered for that (quiet ones are forgotten first)
CLIENT = "nn.client"  # scope key: the client address the limiter used (for the logs)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


SWEEP_SECONDS = 10.0  # how often keys with no hit left in their window are forgotten


@dataclass(frozen=True)
class Window:
    """One limit: at most `amount` requests in any `seconds`, and how a 429 names it."""

    amount: int
    seconds: int
    setting: str
    value: float

    def describe(self) -> str:
        return (
            f"{self.setting} = {self.value:g} (at most {self.amount} requests from one "
            f"address in any {self.seconds} s)"
        )


class MovingWindows:
    """Moving-window counts per window and key, in memory, on the calling thread only.

    A hit is allowed when fewer than `amount` allowed hits of the key fall in the last
    `seconds` (a refused hit is not counted); each key keeps at most `amount` hit times. Keys
    whose hits all left their window are dropped every SWEEP_SECONDS, so memory is bounded by
    the addresses active in the last window. No lock: the event loop is the only caller.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.hits: dict[Window, dict[str, deque[float]]] = {}
        self.next_sweep = clock() + SWEEP_SECONDS

    def _times(self, window: Window, key: str, now: float) -> deque[float]:
        """The key's hit times still in the window (older ones dropped)."""
        keys = self.hits.get(window)
        if keys is None:
            keys = self.hits[window] = {}
        times = keys.get(key)
        if times is None:
            times = keys[key] = deque()
        oldest = now - window.seconds
        while times and times[0] < oldest:
            times.popleft()
        return times

    def hit(self, window: Window, key: str) -> bool:
        """Count one request of `key` in `window`; False (not counted) when it is full."""
        now = self.clock()
        if now >= self.next_sweep:
            self.sweep(now)
        times = self._times(window, key, now)
        if len(times) >= window.amount:
            return False
        times.append(now)
        return True

    def reset_in(self, window: Window, key: str) -> float:
        """Seconds until the oldest counted hit of `key` leaves `window` (0 when none)."""
        now = self.clock()
        times = self._times(window, key, now)
        return times[0] + window.seconds - now if times else 0.0

    def sweep(self, now: float) -> None:
        """Forget the keys whose newest hit left their window."""
        self.next_sweep = now + SWEEP_SECONDS
        for window, keys in self.hits.items():
            oldest = now - window.seconds
            self.hits[window] = {k: t for k, t in keys.items() if t and t[-1] >= oldest}


class RateLimit:
    """ASGI middleware: 429 + Retry-After once an address exceeds either window."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limiter = MovingWindows()
        self.windows = rate_windows(settings)
        self.proxies = parse_networks(settings.trusted_proxies)
        # A flood of refusals must not become a flood of log lines: one line per address per
        # LOG_EVERY_SECONDS, counting the refusals it stands for.
        self.logged: dict[str, tuple[float, int]] = {}  # key -> (last line's time, unlogged)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not route_path(scope).startswith(
            LIMITED_PREFIXES
        ):
            await self.app(scope, receive, send)
            return
        address = scope[CLIENT] = client_address(scope, self.proxies)
        key = address_key(address)
        refused = self.first_refusal(key)
        if refused is not None:
            await self.refuse(scope, send, refused, key, address)
            return
        await self.app(scope, receive, send)

    def first_refusal(self, key: str) -> Window | None:
        """Count a request in every window; the first window it exceeds, or None.

        Fails open: a limiter error lets the request through (and is logged), never a 500.
        """
        try:
            for window in self.windows:
                if not self.limiter.hit(window, key):
                    return window
        except Exception:
            logger.exception("rate limiter failed; request let through")
        return None

    async def refuse(
        self, scope: Scope, send: Send, window: Window, key: str, address: str
    ) -> None:
        """Answer 429 (HTTP or websocket upgrade) and log it."""
        retry_after = max(1, math.ceil(self.limiter.reset_in(window, key)))
        detail = f"too many requests: {window.describe()}; retry after {retry_after} s"
        scope[RATE_LIMITED] = True
        self.log(key, address, scope, window, retry_after)
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": detail[:120]})

    def log(self, key: str, address: str, scope: Scope, window: Window, retry_after: int) -> None:
        """One warning line per address per LOG_EVERY_SECONDS; `refused` counts the 429s it
        stands for (this one and those not logged since the last line)."""
        now = time.monotonic()
        last, unlogged = self.logged.get(key, (-LOG_EVERY_SECONDS, 0))
        if now - last < LOG_EVERY_SECONDS:
            self.logged[key] = (last, unlogged + 1)
            return
        if len(self.logged) >= MAX_LOGGED_ADDRESSES:  # many addresses: forget the quiet ones
            self.logged = {k: v for k, v in self.logged.items() if now - v[0] < LOG_EVERY_SECONDS}
        self.logged[key] = (now, 0)
        log_event(
            "rate_limited",
            logging.WARNING,
            client=address,
            method=scope.get("method", "WS"),
            path=scope["path"][:200],
            setting=window.setting,
            limit=window.value,
            retry_after=retry_after,
            refused=unlogged + 1,
        )


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the root_path a proxy mounted the server under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def rate_windows(settings: Settings) -> list[Window]:
    """The sustained window and the one-second burst window ([] when rate limiting is off)."""
    rate = settings.rate_limit_per_second
    if rate <= 0:
        return []
    seconds = max(1, settings.rate_limit_window_seconds)
    burst = max(settings.rate_limit_burst, math.ceil(rate))
    windows = [Window(burst, 1, "rate_limit_burst", burst)]
    if seconds > 1:
        windows.append(
            Window(max(1, math.ceil(rate * seconds)), seconds, "rate_limit_per_second", rate)
        )
    return windows


def parse_networks(entries: list[str]) -> list[Network]:
    """trusted_proxies as networks (a bare address is a /32 or /128)."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


def is_trusted(address: str, proxies: list[Network]) -> bool:
    """Whether an address is one of the trusted proxies."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(scope: Scope, proxies: list[Network]) -> str:
    """The client's address: the peer, or behind trusted proxies the X-Forwarded-For client."""
    client = scope.get("client")
    peer: str = client[0] if client else "unknown"
    if not proxies or not is_trusted(peer, proxies):
        return peer
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for hop in ",".join(forwarded).split(",") if hop.strip()]
    for hop in reversed(hops):  # the right end is what our own proxies appended
        if not is_trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer


@functools.lru_cache(maxsize=4096)  # parsing an address costs ~9 us; clients come back
def address_key(address: str) -> str:
    """The limiter's key: the address, an IPv4-mapped IPv6 address's IPv4, or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
