"""The rate limiter's own moving windows (app/ops/ratelimit.py MovingWindows) decide as the
`limits` library's MovingWindowRateLimiter with its memory storage (the gold: the limiter the
server used before, whose storage started a thread per request), and keep memory bounded."""

from __future__ import annotations

import math
import random
import types

import pytest
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.ops import ratelimit
from app.ops.ratelimit import MovingWindows, Window, rate_windows
from tests.conftest import make_settings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_same_decisions_and_retry_after_as_the_limits_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3,000 hits of 4 addresses at random times through the burst (3 in 1 s) and sustained
    (10 in 5 s) windows, each window tried in turn as RateLimit does: every allow/refuse and
    every whole-second Retry-After equal the library's on the same clock."""
    clock = Clock()
    monkeypatch.setattr("limits.storage.memory.time", types.SimpleNamespace(time=clock))
    gold = MovingWindowRateLimiter(MemoryStorage())
    ours = MovingWindows(clock)
    windows = rate_windows(make_settings(
        rate_limit_per_second=2, rate_limit_burst=3, rate_limit_window_seconds=5))
    assert [(w.amount, w.seconds) for w in windows] == [(3, 1), (10, 5)]
    items = {w: RateLimitItemPerSecond(w.amount, w.seconds) for w in windows}
    rng = random.Random(7)
    refusals = 0
    for _ in range(3000):
        clock.now += rng.expovariate(6.0)  # ~6 requests a second across the addresses
        key = f"10.0.0.{rng.randrange(4)}"
        for window in windows:
            expected = gold.hit(items[window], key)
            assert ours.hit(window, key) is expected, (clock.now, key, window.setting)
            if not expected:
                refusals += 1
                reset = gold.get_window_stats(items[window], key).reset_time
                assert math.ceil(ours.reset_in(window, key)) == math.ceil(reset - clock.now)
                break
    assert 300 < refusals < 2700  # both outcomes were exercised


def test_idle_addresses_are_forgotten() -> None:
    """Keys whose hits left their window are dropped at the next sweep (memory bounded by the
    recently active addresses); an active one is kept with its count."""
    clock = Clock()
    windows = MovingWindows(clock)
    window = Window(2, 1, "rate_limit_burst", 2)
    for n in range(1000):
        assert windows.hit(window, f"10.1.{n // 250}.{n % 250}")
    clock.now += ratelimit.SWEEP_SECONDS - 0.5
    assert windows.hit(window, "10.9.9.9") and windows.hit(window, "10.9.9.9")
    clock.now += 0.6  # past the sweep time: the next hit sweeps
    assert not windows.hit(window, "10.9.9.9")
    assert list(windows.hits[window]) == ["10.9.9.9"]
