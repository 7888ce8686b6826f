"""Prometheus metrics: one CollectorRegistry per app (tests build many apps), never the global.

Two sources:
- `RequestMetrics`, a pure ASGI middleware: request latency per route template (histogram),
  requests by status, binary websocket frames sent, and a JSON log line for every 429 that a
  route answered (quotas; the rate limiter logs its own).
- `ManagerCollector`, read at scrape time from the session manager's state (nothing to keep in
  step): sessions, running, subscribers, workers, job queue depth, the event counters the
  manager and the stream hooks keep in `manager.counters` (app/ops/events.py), and the resident
  memory and CPU time of the web process and of each worker process (from /proc/<pid>/statm
  and /proc/<pid>/stat; no psutil).

docs/operations.md lists every metric.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client import Counter as CounterMetric
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ops.logs import log_event
from app.ops.ratelimit import CLIENT, RATE_LIMITED

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of a 404 (any path: the label set stays bounded)
RATE_LIMITED_ROUTE = "rate_limited"  # the route label of a request the limiter refused
MAX_LOGGED_BODY = 2048

# manager.counters key -> (metric name, help). Counters the hooks have not touched yet are 0.
EVENT_COUNTERS = {
    "frames_merged": (
        "nn_frames_merged",
        "Frames merged into a subscriber's pending slot before it was sent (the older frame "
        "is never sent; its epoch rows are kept in the newer one)",
    ),
    "slow_client_closes": (
        "nn_slow_client_closes",
        "Websocket clients closed for not reading (send deadline or pending-frame overflow)",
    ),
    "worker_restarts": (
        "nn_worker_restarts", "Workers that died and were replaced (their sessions are lost)"
    ),
}


def resident_bytes(pid: int | str) -> int | None:
    """Resident set size of a process from /proc/<pid>/statm (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU time of a process from /proc/<pid>/stat (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()  # after "(comm)": it may hold spaces
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None


class ManagerCollector:
    """Gauges and counters computed from `app.state.manager` when /metrics is scraped."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        manager = getattr(self.app.state, "manager", None)
        handles = list(manager.handles.values()) if manager is not None else []
        workers = list(manager.workers) if manager is not None else []
        counters: Counter[str] = Counter(getattr(manager, "counters", {}))

        yield GaugeMetricFamily("nn_sessions", "Live sessions", value=len(handles))
        yield GaugeMetricFamily(
            "nn_sessions_running", "Sessions training now (not paused)",
            value=sum(1 for h in handles if getattr(h, "status", None) == "running"),
        )
        yield GaugeMetricFamily(
            "nn_sessions_paused_unwatched",
            "Sessions the server paused because nobody watched or touched them",
            value=sum(1 for h in handles if getattr(h, "paused_unwatched", False)),
        )
        yield GaugeMetricFamily(
            "nn_subscribers", "Websocket clients watching a session",
            value=sum(len(h.subscribers) for h in handles),
        )
        yield GaugeMetricFamily(
            "nn_workers", "Live worker processes (or threads)",
            value=sum(1 for w in workers if w.alive),
        )
        yield GaugeMetricFamily(
            "nn_jobs_queued", "Jobs not finished yet (race steps, replays, long steps)",
            value=job_queue_depth(manager),
        )
        writer = getattr(getattr(manager, "persistence", None), "writer", None)
        yield GaugeMetricFamily(
            "nn_checkpoint_backlog", "Checkpoints (and ops behind them) the checkpoint writer "
            "has queued or is writing (app/storage/writer.py)",
            value=writer.pending() if writer is not None else 0,
        )
        yield GaugeMetricFamily(
            "nn_checkpoint_backlog_bytes", "Bytes of checkpoints queued for the checkpoint "
            "writer, not written yet (max_checkpoint_backlog_bytes bounds it)",
            value=writer.backlog_bytes() if writer is not None else 0,
        )
        held = GaugeMetricFamily(
            "nn_jobs_held", "Races and time-travel replays kept in the workers", labels=["kind"]
        )
        held_bytes = GaugeMetricFamily(
            "nn_jobs_held_bytes", "Memory the races and replays last reported (their budget)",
            labels=["kind"],
        )
        for kind, table in (("race", "races"), ("replay", "replays")):
            count, nbytes = holdings(manager, table)
            held.add_metric([kind], count)
            held_bytes.add_metric([kind], nbytes)
        yield held
        yield held_bytes
        yield CounterMetricFamily(
            "nn_frames_sent", "Binary websocket frames sent to clients",
            value=self.metrics.counts["frames_sent"],
        )
        for key, (name, documentation) in EVENT_COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=counters[key])
        closes = CounterMetricFamily(
            "nn_websocket_closes", "Websocket streams that ended, by who ended them",
            labels=["reason"],
        )
        for reason in ("client", "server", "slow_client", "lost"):
            closes.add_metric([reason], counters[f"websocket_closed_{reason}"])
        yield closes

        memory = GaugeMetricFamily(
            "nn_process_resident_memory_bytes",
            "Resident memory of the web process and of each worker process (/proc/<pid>/statm)",
            labels=["process", "worker", "pid"],
        )
        cpu = CounterMetricFamily(
            "nn_process_cpu_seconds",
            "User + system CPU time of the web process and of each worker process "
            "(/proc/<pid>/stat)",
            labels=["process", "worker", "pid"],
        )
        processes = [("web", "", os.getpid())]
        for worker in workers:
            pid = getattr(worker.runner, "pid", None)  # None: a worker thread in this process
            if pid is not None and worker.alive:
                processes.append(("worker", str(worker.index), pid))
        for process, index, pid in processes:
            rss, seconds = resident_bytes(pid), cpu_seconds(pid)
            if rss is not None:
                memory.add_metric([process, index, str(pid)], rss)
            if seconds is not None:
                cpu.add_metric([process, index, str(pid)], seconds)
        yield memory
        yield cpu


def job_queue_depth(manager: Any) -> int:
    """Jobs not finished: `manager.jobs.depth()` if the board has it, else the records of
    `manager.jobs.jobs` still running (app/sessions/jobs.py JobBoard), else 0."""
    board = getattr(manager, "jobs", None)
    try:
        depth = getattr(board, "depth", None)
        if callable(depth):
            return int(depth())
        records = getattr(board, "jobs", {})
        return sum(1 for record in list(records.values()) if getattr(record, "running", False))
    except Exception:  # a scrape never fails on a board being changed under it
        return 0


def holdings(manager: Any, table: str) -> tuple[int, int]:
    """(count, bytes) of the races or replays the job board holds on live workers."""
    held = getattr(getattr(manager, "jobs", None), table, None)
    if not isinstance(held, dict):
        return 0, 0
    live = [h for h in list(held.values()) if getattr(h.worker, "alive", False)]
    return len(live), sum(int(getattr(h, "nbytes", 0)) for h in live)


class Metrics:
    """The app's registry and the metrics the middleware updates."""

    def __init__(self, app: Any) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin of every counter (process-wide switch)
        self.registry = CollectorRegistry(auto_describe=True)
        self.counts: Counter[str] = Counter()
        self.latency = Histogram(
            "nn_http_request_duration_seconds",
            "HTTP request latency, from the first byte in to the last byte out, by route",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.requests = CounterMetric(
            "nn_http_requests", "HTTP requests answered, by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.rate_limited = CounterMetric(
            "nn_rate_limited", "Requests and websocket connects refused by the rate limiter",
            ["kind"], registry=self.registry,
        )
        self.registry.register(ManagerCollector(app, self))
        ProcessCollector(registry=self.registry)  # the web process: CPU, RSS, open fds


def route_template(scope: Scope) -> str:
    """The matched route's path template (/api/sessions/{session_id}), never the raw path;
    "rate_limited" for a request the limiter refused before routing, else "unmatched"."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return RATE_LIMITED_ROUTE if scope.get(RATE_LIMITED) else UNMATCHED


class RequestMetrics:
    """ASGI middleware: latency and status per route, websocket frames sent, 429s logged."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        counts = self.metrics.counts

        async def counting_send(message: Message) -> None:
            await send(message)
            if message["type"] == "websocket.send" and message.get("bytes") is not None:
                counts["frames_sent"] += 1

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if scope.get(RATE_LIMITED):
                self.metrics.rate_limited.labels("websocket").inc()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response
        body: list[bytes] | None = None
        headers: list[tuple[bytes, bytes]] = []

        async def observing_send(message: Message) -> None:
            nonlocal status, body, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 429:
                    body, headers = [], list(message.get("headers", []))
            elif (
                message["type"] == "http.response.body"
                and body is not None
                and sum(map(len, body)) < MAX_LOGGED_BODY
            ):
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(method, route, str(status)).inc()
            if scope.get(RATE_LIMITED):
                self.metrics.rate_limited.labels("http").inc()
            elif body is not None:
                log_quota(scope, route, b"".join(body), headers)


def log_quota(scope: Scope, route: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Log a 429 a route answered (a quota): its detail names the setting."""
    try:
        detail: Any = json.loads(body[:MAX_LOGGED_BODY]).get("detail")
    except (ValueError, AttributeError):
        detail = None
    retry_after = dict(headers).get(b"retry-after", b"").decode("latin-1") or None
    client = scope.get("client")
    log_event(
        "quota_exceeded", logging.WARNING,
        client=scope.get(CLIENT) or (client[0] if client else None),
        method=scope.get("method"), route=route, detail=str(detail)[:300],
        retry_after=retry_after,
    )
