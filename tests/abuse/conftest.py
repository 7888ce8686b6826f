"""Real servers for the attack tests (issue 9): each module starts its own `nn-playground`
subprocess with the settings it needs (bench/abuse_lib.py) and, where it measures latency, one
monitor process (a /health prober and a canary session watched over the websocket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from bench.abuse_lib import ATTACKER, Figures, Monitor, Server, figures

T = TypeVar("T")

# The bar: /health p99 under 50 ms during every attack.
HEALTH_P99_MS = 50.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an attack coroutine to its end."""
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A real server for the module; its env comes from the module's `SERVER_ENV`."""
    env: dict[str, str] = getattr(request.module, "SERVER_ENV", {})
    workers: int | None = getattr(request.module, "SERVER_WORKERS", None)
    with Server(workers=workers, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def monitor(server: Server) -> Iterator[Monitor]:
    """The prober and the canary, for the module's server."""
    with Monitor(server) as started:
        yield started


def quiet_and_attacked(
    monitor: Monitor, attack: Coroutine[Any, Any, T], quiet: float = 1.0
) -> tuple[Figures, Figures, T]:
    """`quiet` seconds of nothing, then the attack; the figures of both windows.

    The attack window is the attack's own (`Outcome.window`, after its set-up) or its whole run,
    at least 2 s long, and its /health calls are waited for.
    """
    quiet_start = time.monotonic()
    time.sleep(quiet)
    quiet_end = began = time.monotonic()
    outcome = run(attack)
    window = outcome.get("window") if isinstance(outcome, dict) else getattr(outcome, "window",
                                                                              None)
    start, end = window or (began, time.monotonic())
    end = max(end, start + 2.0)
    time.sleep(max(0.0, end - time.monotonic()) + 0.3)
    samples = monitor.samples()
    return figures(samples, quiet_start, quiet_end), figures(samples, start, end), outcome


def assert_responsive(quiet: Figures, attacked: Figures, what: str) -> None:
    """/health p99 < 50 ms under attack (the quiet figures shown: the machine is shared)."""
    assert attacked.p99 < HEALTH_P99_MS, (
        f"/health p99 {attacked.p99:.1f} ms during {what} (>= {HEALTH_P99_MS} ms)\n"
        f"  quiet:  {quiet.line()}\n  attack: {attacked.line()}"
    )
    assert attacked.failed == 0, f"/health failed {attacked.failed} times during {what}"


def http(server: Server, source: str = ATTACKER) -> httpx.Client:
    """A plain HTTP client whose connections come from `source` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=server.base, transport=transport, timeout=30)
