"""One-line hooks for code the operations package does not own (manager.py, stream.py).

Each hook counts the event in `manager.counters` (read by /metrics at scrape time, see
app/ops/metrics.py) and writes one JSON log line (app/ops/logs.py). Hooks are synchronous,
cheap and never raise, so they are safe in a cancelled handler's `finally`.
"""

from __future__ import annotations

import logging
from typing import Any

from app.ops.logs import log_event, logger
from app.ops.ratelimit import CLIENT


def worker_lost(manager: Any, worker: Any) -> None:
    """A worker's pipe closed while the server was not stopping: count the restart, log it."""
    try:
        runner = worker.runner
        pid = getattr(runner, "pid", None)  # None: an in-process worker thread
        exitcode = getattr(runner, "exitcode", None)  # None: not reaped yet (or a thread)
        sessions = sum(1 for h in manager.handles.values() if h.worker is worker)
        manager.counters["worker_restarts"] += 1
        log_event(
            "worker_lost", logging.ERROR, worker=worker.index, pid=pid, exitcode=exitcode,
            sessions_lost=sessions, restarting=True,
        )
    except Exception:  # an ops hook must not stop the manager from replacing the worker
        logger.exception("worker_lost hook failed")


def websocket_closed(manager: Any, websocket: Any, subscriber: Any) -> None:
    """A websocket client's stream ended: count slow-client closes, log every disconnect."""
    try:
        if getattr(subscriber, "lost", False):
            reason = "lost"  # its worker died (close 1011)
        elif subscriber.overflow:
            reason = "slow_client"  # stopped reading: send deadline or pending frames overflow
            manager.counters["slow_client_closes"] += 1
        elif subscriber.ended_by_server:
            reason = "server"  # removed, or shutting down
        else:
            reason = "client"
        manager.counters[f"websocket_closed_{reason}"] += 1
        client = websocket.scope.get("client")
        log_event(
            "websocket_closed",
            logging.WARNING if reason == "slow_client" else logging.INFO,
            session=subscriber.session_id,
            client=websocket.scope.get(CLIENT) or (client[0] if client else None),
            reason=reason,
            frames_sent=subscriber.seq,
        )
    except Exception:
        logger.exception("websocket_closed hook failed")
