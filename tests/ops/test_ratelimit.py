"""The per-address rate limit (app/ops/ratelimit.py): 429 + Retry-After + a detail naming the
setting, addresses counted apart, the page, static files and probes never limited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from app.main import create_app
from app.ops.ratelimit import (
    address_key,
    client_address,
    parse_networks,
    rate_windows,
    route_path,
)
from tests.conftest import LiveServer, make_settings

PROBE = "/api/registry"  # a cheap /api route that needs no session


@pytest.fixture
def limited() -> Iterator[TestClient]:
    """A client of an app allowing 3 requests a second per address (10 in any 5 s)."""
    settings = make_settings(
        rate_limit_per_second=2, rate_limit_burst=3, rate_limit_window_seconds=5
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_burst_gets_429_with_retry_after_and_the_setting(limited: TestClient) -> None:
    """The fourth request in a second is refused: 429, a whole-second Retry-After, JSON detail
    naming rate_limit_burst and its value."""
    assert [limited.get(PROBE).status_code for _ in range(3)] == [200, 200, 200]
    response = limited.get(PROBE)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "detail": "too many requests: rate_limit_burst = 3 (at most 3 requests from one "
        "address in any 1 s); retry after 1 s"
    }


def test_sustained_rate_names_rate_limit_per_second() -> None:
    """Past the sustained budget (1/s over 5 s = 5 requests) the 429 names
    rate_limit_per_second and asks to wait until the oldest request leaves the window."""
    settings = make_settings(
        rate_limit_per_second=1, rate_limit_burst=100, rate_limit_window_seconds=5
    )
    with TestClient(create_app(settings)) as client:
        assert all(client.get(PROBE).status_code == 200 for _ in range(5))
        response = client.get(PROBE)
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 5
    assert "rate_limit_per_second = 1 (at most 5 requests" in response.json()["detail"]


def test_page_static_health_metrics_are_never_limited(limited: TestClient) -> None:
    """A limited address still loads the page and its files, and probes keep answering."""
    for _ in range(4):
        limited.get(PROBE)
    assert limited.get(PROBE).status_code == 429
    for path in ("/", "/static/css/playground.css", "/health", "/metrics", "/openapi.json"):
        for _ in range(5):
            assert limited.get(path).status_code == 200, path


def test_websocket_connect_is_limited(limited: TestClient) -> None:
    """A websocket connect counts: over the limit the upgrade is answered 429 + Retry-After,
    and the refusal is counted as a websocket one."""
    for _ in range(4):
        limited.get(PROBE)
    with pytest.raises(WebSocketDenialResponse) as denied, limited.websocket_connect(
        "/ws/sessions/nope"
    ):
        pass
    assert denied.value.status_code == 429
    assert denied.value.headers["retry-after"] == "1"
    assert "rate_limit_burst = 3" in json.loads(denied.value.content)["detail"]
    assert 'nn_rate_limited_total{kind="websocket"} 1.0' in limited.get("/metrics").text


def test_addresses_are_counted_apart() -> None:
    """One address at its limit does not limit another (two peers of the same app)."""
    app = create_app(make_settings(rate_limit_per_second=1, rate_limit_burst=2))
    first = TestClient(app, client=("10.0.0.1", 40000))
    second = TestClient(app, client=("10.0.0.2", 40000))
    assert [first.get(PROBE).status_code for _ in range(3)] == [200, 200, 429]
    assert [second.get(PROBE).status_code for _ in range(3)] == [200, 200, 429]


def forwarded(app: Any, address: str) -> int:
    """Status of a request from 127.0.0.1 that says it forwards `address`."""
    client = TestClient(app, client=("127.0.0.1", 40000))
    return client.get(PROBE, headers={"X-Forwarded-For": f"{address}, 127.0.0.1"}).status_code


def test_x_forwarded_for_only_from_trusted_proxies() -> None:
    """X-Forwarded-For names the client only when the peer is a trusted proxy; otherwise a
    client cannot dodge its limit by inventing addresses."""
    settings = make_settings(rate_limit_per_second=1, rate_limit_burst=1)
    untrusted = create_app(settings)
    assert [forwarded(untrusted, f"10.0.0.{i}") for i in range(3)] == [200, 429, 429]
    trusted = create_app(settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]}))
    assert [forwarded(trusted, f"10.0.0.{i}") for i in range(3)] == [200, 200, 200]
    assert forwarded(trusted, "10.0.0.1") == 429


def test_zero_turns_the_limit_off() -> None:
    """rate_limit_per_second = 0: no windows, nothing refused."""
    assert rate_windows(make_settings(rate_limit_per_second=0)) == []
    client = TestClient(create_app(make_settings(rate_limit_per_second=0, rate_limit_burst=1)))
    assert all(client.get(PROBE).status_code == 200 for _ in range(5))


def test_addresses_and_keys() -> None:
    """IPv6 clients are keyed by /64; the rightmost untrusted X-Forwarded-For hop is the client."""
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_key("testclient") == "testclient"
    proxies = parse_networks(["10.0.0.0/8"])
    hops = b"1.2.3.4, 5.6.7.8, 10.2.2.2"
    scope = {"client": ("10.1.1.1", 1), "headers": [(b"x-forwarded-for", hops)]}
    assert client_address(scope, proxies) == "5.6.7.8"
    assert client_address(scope, []) == "10.1.1.1"
    mounted = {"path": "/playground/api/registry", "root_path": "/playground"}
    assert route_path(mounted) == "/api/registry"  # served under a proxy's prefix: still limited


def test_a_real_server_refuses_with_429_over_http_and_websocket() -> None:
    """uvicorn with the server's own websocket settings: over the limit, REST and the websocket
    upgrade are both answered 429 + Retry-After (the upgrade as an HTTP denial), and /health
    still answers."""
    with LiveServer(rate_limit_per_second=1, rate_limit_burst=2) as server, httpx.Client(
        base_url=server.url
    ) as http:
        assert [http.get(PROBE).status_code for _ in range(3)] == [200, 200, 429]
        with pytest.raises(InvalidStatus) as denied:
            connect(f"ws://127.0.0.1:{server.port}/ws/sessions/nope", open_timeout=5)
        response = denied.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert b"rate_limit_burst = 2" in response.body
        assert http.get("/health").status_code == 200
