"""GET /metrics (app/ops/metrics.py): the counters move when a session runs with a subscriber,
memory is reported per process, labels are route templates, registries are per app."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.ops.metrics import job_queue_depth
from tests.conftest import make_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of /metrics, keyed by (name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_counters_move_with_a_running_session_and_a_subscriber() -> None:
    """With a real worker process: a session that trains while a client watches shows up as a
    session, a running session, a subscriber and frames sent; the web process and the worker
    process each report their resident memory; when the client leaves, its close is counted."""
    app = create_app(make_settings(worker_processes=1))
    with TestClient(app) as client:
        before = scrape(client)
        assert value(before, "nn_sessions") == 0
        assert value(before, "nn_frames_sent_total") == 0
        created = client.post("/api/sessions", json={})
        assert created.status_code == 201, created.text
        session_id, token = created.json()["id"], created.json()["owner_token"]
        with client.websocket_connect(f"/ws/sessions/{session_id}") as ws:
            ws.send_json({"type": "auth", "token": token})
            ws.send_json({"type": "play", "id": 1})
            frames = 0
            while frames < 5:
                frames += ws.receive().get("bytes") is not None
            during = scrape(client)
        assert value(during, "nn_sessions") == 1
        assert value(during, "nn_sessions_running") == 1
        assert value(during, "nn_subscribers") == 1
        assert value(during, "nn_workers") == 1
        assert value(during, "nn_frames_sent_total") >= 5
        assert value(during, "nn_jobs_queued") == 0
        assert value(during, "nn_jobs_held", kind="race") == 0
        worker = app.state.manager.workers[0]
        rss = [
            (dict(labels), number) for (name, labels), number in during.items()
            if name == "nn_process_resident_memory_bytes"
        ]
        assert {labels["process"] for labels, _ in rss} == {"web", "worker"}
        worker_rss = [number for labels, number in rss if labels["process"] == "worker"]
        assert [labels["pid"] for labels, _ in rss if labels["worker"] == "0"] == [
            str(worker.runner.pid)
        ]
        assert worker_rss[0] > 10_000_000  # a Python process with numpy: tens of MB
        worker_cpu = value(during, "nn_process_cpu_seconds_total", process="worker",
                           worker="0", pid=str(worker.runner.pid))
        assert worker_cpu > 0  # it imported numpy and trained
        posted = value(
            during, "nn_http_request_duration_seconds_count", method="POST", route="/api/sessions"
        )
        assert posted == 1
        assert value(
            during, "nn_http_requests_total", method="POST", route="/api/sessions", status="201"
        ) == 1

        deadline = time.monotonic() + 5
        while value(scrape(client), "nn_websocket_closes_total", reason="client") < 1:
            assert time.monotonic() < deadline, "the websocket close was not counted"
            time.sleep(0.05)
        after = scrape(client)
        assert value(after, "nn_subscribers") == 0
        assert value(after, "nn_frames_sent_total") >= value(during, "nn_frames_sent_total")


def test_route_labels_are_templates_and_unmatched_paths_share_one() -> None:
    """Latency is labelled by route template (no id in a label); any unknown path is
    "unmatched", so clients cannot grow the label set."""
    with TestClient(create_app(make_settings())) as client:
        for session_id in ("a" * 12, "b" * 12):
            assert client.get(f"/api/sessions/{session_id}").status_code == 404
        for path in ("/nope/1", "/nope/2"):
            client.get(path)
        samples = scrape(client)
    template = "/api/sessions/{session_id}"
    assert value(samples, "nn_http_request_duration_seconds_count", method="GET",
                 route=template) == 2
    assert value(samples, "nn_http_requests_total", method="GET", route="unmatched",
                 status="404") == 2
    assert not any("a" * 12 in dict(labels).get("route", "") for _, labels in samples)


def test_each_app_has_its_own_registry() -> None:
    """Two apps count apart, and nothing is registered in prometheus_client's global registry."""
    first, second = create_app(make_settings()), create_app(make_settings())
    with TestClient(first) as one, TestClient(second) as two:
        for _ in range(3):
            one.get("/health")
        two.get("/health")
        count = "nn_http_request_duration_seconds_count"
        assert value(scrape(one), count, method="GET", route="/health") == 3
        assert value(scrape(two), count, method="GET", route="/health") == 1
    assert REGISTRY.get_sample_value("nn_sessions") is None


def test_rate_limited_requests_are_counted() -> None:
    """A 429 from the limiter counts in nn_rate_limited_total and under the route
    "rate_limited"."""
    settings = make_settings(rate_limit_per_second=1, rate_limit_burst=1)
    with TestClient(create_app(settings)) as client:
        statuses = [client.get("/api/registry").status_code for _ in range(3)]
        samples = scrape(client)
    assert statuses == [200, 429, 429]
    assert value(samples, "nn_rate_limited_total", kind="http") == 2
    assert value(samples, "nn_http_requests_total", method="GET", route="rate_limited",
                 status="429") == 2


def test_a_running_job_is_in_the_queue_depth() -> None:
    """A long REST step answered 202 is a job: nn_jobs_queued is 1 while it runs, 0 once
    cancelled."""
    with TestClient(create_app(make_settings(job_wait_seconds=0.05))) as client:
        body = {"dataset": "spiral", "n_samples": 600, "batch_size": 1}
        created = client.post("/api/sessions", json=body).json()
        auth = {"Authorization": f"Bearer {created['owner_token']}"}
        started = client.post(f"/api/sessions/{created['id']}/commands",
                              json={"type": "step", "n": 100_000}, headers=auth)
        assert started.status_code == 202, started.text
        assert value(scrape(client), "nn_jobs_queued") == 1
        client.delete(f"/api/jobs/{started.json()['job']['id']}", headers=auth)
        deadline = time.monotonic() + 5
        while value(scrape(client), "nn_jobs_queued") != 0:
            assert time.monotonic() < deadline, "the cancelled job still counts"
            time.sleep(0.05)


def test_job_queue_depth_reads_the_manager_jobs() -> None:
    """The queue depth counts the job board's records still running (or its depth()), else 0."""
    assert job_queue_depth(SimpleNamespace()) == 0
    assert job_queue_depth(SimpleNamespace(jobs=SimpleNamespace(depth=lambda: 3))) == 3
    records = {str(i): SimpleNamespace(running=i < 2) for i in range(5)}
    assert job_queue_depth(SimpleNamespace(jobs=SimpleNamespace(jobs=records))) == 2


def test_metrics_can_be_turned_off() -> None:
    """metrics_enabled = false: no /metrics route."""
    client = TestClient(create_app(make_settings(metrics_enabled=False)))
    assert client.get("/metrics").status_code == 404
    assert json.loads(client.get("/metrics").text) == {"detail": "Not Found"}
