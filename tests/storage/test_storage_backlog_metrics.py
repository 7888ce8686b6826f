"""The checkpoint writer's backlog on /metrics (nn_checkpoint_backlog, _bytes).

Gold: the sizes of the checkpoints the test queued behind a held writer, computed from their
bytes here (snapshot + rows), and 0 once the writer is let go and flushed.
"""

from __future__ import annotations

import re
import threading

from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings
from tests.storage.test_storage_sessions import checkpoint


def gauge(text: str, name: str) -> float:
    """The value of an unlabelled gauge in a Prometheus text exposition."""
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


def test_metrics_show_the_checkpoint_backlog() -> None:
    """Held in an op, the writer queues three checkpoints of two sessions (s1's two coalesce
    into one): /metrics shows 3 items (the op being run, s1's joined checkpoint, s2's) and
    exactly their bytes; once released and flushed, both are 0."""
    with TestClient(create_app(make_settings())) as client:
        writer = client.app.state.manager.persistence.writer  # type: ignore[attr-defined]
        entered, gate = threading.Event(), threading.Event()

        def hold() -> None:
            entered.set()
            gate.wait(10.0)

        writer.after("hold", hold)
        assert entered.wait(5.0)
        first, second = checkpoint("s1", 1, 10), checkpoint("s1", 11, 5)
        other = checkpoint("s2", 1, 7)
        for cp in (first, second, other):
            writer.submit(cp)
        # s1's two coalesce: its newest snapshot and all 15 rows; s2's 7 rows.
        expected = len(second.snapshot) + len(first.rows) + len(second.rows)
        expected += len(other.snapshot) + len(other.rows)
        text = client.get("/metrics").text
        assert gauge(text, "nn_checkpoint_backlog_bytes") == expected
        assert gauge(text, "nn_checkpoint_backlog") == 3  # the held op + 2 queued writes
        gate.set()
        assert writer.flush(10.0)
        text = client.get("/metrics").text
        assert gauge(text, "nn_checkpoint_backlog_bytes") == 0
        assert gauge(text, "nn_checkpoint_backlog") == 0
