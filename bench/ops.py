"""What operating the server costs (issue 9, app/ops): the rate limiter and the metrics
middleware per request, and one /metrics scrape, measured in-process on a trivial ASGI app.

    .venv/bin/python bench/ops.py [--requests 20000] [--sessions 200]

Prints microseconds per request through (a) nothing, (b) RequestMetrics, (c) RateLimit with
the default settings + RequestMetrics (requests spread over many addresses, each sending 150:
under its limit), (d) RateLimit refusing (one address over its limit: the 429 path, its log
lines to a string), and the time of one scrape with N fake sessions (each with one subscriber)
and the real /proc reads.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest

from app.ops.logs import configure_logging
from app.ops.metrics import Metrics, RequestMetrics
from app.ops.ratelimit import RateLimit
from app.settings import Settings


async def endpoint(scope: Any, receive: Any, send: Any) -> None:
    """A trivial ASGI app: 200, two bytes."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def per_request(app: Any, requests: int, addresses: int = 1) -> float:
    """Mean microseconds per request through `app` (best of 3 runs), from `addresses`
    clients in turn."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(requests):
            client = (f"10.0.{i % addresses // 256}.{i % addresses % 256}", 1)
            scope = {"type": "http", "path": "/api/registry", "method": "GET",
                     "client": client, "headers": [], "app": None}
            await app(scope, receive, send)
        runs.append((time.perf_counter() - start) / requests * 1e6)
    return min(runs)


def scrape_ms(sessions: int) -> float:
    """Median milliseconds of one scrape with `sessions` fake sessions and one worker pid."""
    worker = SimpleNamespace(alive=True, index=0, runner=SimpleNamespace(pid=1))
    handles = {
        str(i): SimpleNamespace(status="running", subscribers={object()}, worker=worker)
        for i in range(sessions)
    }
    manager = SimpleNamespace(handles=handles, workers=[worker], counters=Counter())
    app = SimpleNamespace(state=SimpleNamespace(manager=manager))
    metrics = Metrics(app)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        generate_latest(metrics.registry)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    configure_logging()
    app_state = SimpleNamespace(state=SimpleNamespace())
    defaults = Settings()  # 20/s sustained over 10 s, 60 in any second
    closed = Settings(rate_limit_per_second=1, rate_limit_burst=1)
    metrics = Metrics(app_state)
    stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        rows = [
            ("(a) bare endpoint", await per_request(endpoint, args.requests)),
            ("(b) + RequestMetrics",
             await per_request(RequestMetrics(endpoint, metrics), args.requests)),
            ("(c) + RateLimit (defaults), under the limit", await per_request(
                RequestMetrics(RateLimit(endpoint, defaults), metrics), args.requests,
                addresses=args.requests // 50)),
            ("(d) RateLimit refusing (429 + log line)", await per_request(
                RequestMetrics(RateLimit(endpoint, closed), metrics), args.requests)),
        ]
    finally:
        sys.stderr = stderr
    for name, micros in rows:
        print(f"{name:42s} {micros:7.1f} us/request")
    print(f"{'one /metrics scrape, ' + str(args.sessions) + ' sessions':42s} "
          f"{scrape_ms(args.sessions):7.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
