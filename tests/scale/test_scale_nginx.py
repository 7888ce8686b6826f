"""The repo's deploy/nginx.conf, run by Debian's nginx in front of the two replicas (issue 12):
websockets reach both replicas, and its request limits hold for the sum of the replicas.

nginx runs unprivileged from a copy of deploy/nginx.conf whose listen port and upstream servers
are replaced by the test's; nothing else changes. Gold: each replica's own log names the
websocket it accepted, so both replicas serve the same session's sockets through the proxy.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.scale.conftest import Cluster, accepted_websockets, create, ws_url
from tests.scale.test_scale_replicas import frame_epochs, receive_until

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def proxy(nginx_proxy: str) -> str:
    """nginx with the repo's configuration on a loopback port, in front of both replicas."""
    return nginx_proxy


def test_websockets_through_nginx_reach_both_replicas(ray_cluster: Cluster, proxy: str) -> None:
    """Two websockets to one session through nginx (least_conn, no affinity) land on the two
    replicas; one drives the session, both watch it advance, and the other pauses it."""
    created = create(proxy, dataset="xor", speed=100)
    sid, token = created["id"], created["owner_token"]
    with (
        connect(ws_url(proxy, sid), compression=None, max_size=None) as first,
        connect(ws_url(proxy, sid), compression=None, max_size=None) as second,
    ):
        for ws in (first, second):
            assert receive_until(ws, "hello")["session"]["id"] == sid
            ws.send(json.dumps({"type": "auth", "token": token}))
            assert receive_until(ws, "auth")["owner"] is True
        first.send(json.dumps({"type": "play"}))
        seen_first, seen_second = frame_epochs(first, 5), frame_epochs(second, 5)
        assert seen_first[-1] > seen_first[0] and seen_second[-1] > seen_second[0]
        second.send(json.dumps({"type": "pause", "id": 3}))
        ack = receive_until(second, "ack")
        while ack.get("id") != 3:
            ack = receive_until(second, "ack")
        assert ack["session"]["status"] == "paused"
    path = f"/ws/sessions/{sid}"
    assert [accepted_websockets(r, path) for r in ray_cluster.replicas] == [1, 1]


def test_rate_limit_holds_for_the_sum_of_the_replicas(ray_cluster: Cluster, proxy: str) -> None:
    """150 requests from one client as fast as it can send them, through nginx to two
    replicas: at most 1 + 60 (the burst) + 20 per second elapsed pass, the rest are nginx's 429
    with Retry-After and a JSON detail naming the limit; a websocket connect is refused the
    same way meanwhile. Gold: the replicas' own limiters (60 in any second, each) would let
    up to 120 of them through in that time; both replicas served some of them (their logs).
    Runs last in this module: nginx's bucket for 127.0.0.1 is empty afterwards, so it waits
    until it refilled (60 / 20 per second = 3 s)."""
    headers = {"X-Forwarded-For": "10.9.8.7"}  # the replicas count this address, not 127.0.0.1
    marker = f"/api/registry?probe={time.monotonic_ns()}"
    statuses: list[int] = []
    refused: httpx.Response | None = None
    with httpx.Client(base_url=proxy, headers=headers, timeout=30) as client:
        started = time.monotonic()
        for _ in range(150):
            reply = client.get(marker)
            statuses.append(reply.status_code)
            if reply.status_code == 429 and refused is None:
                refused = reply
        elapsed = time.monotonic() - started
        with (
            pytest.raises(InvalidStatus) as denied,
            connect(ws_url(proxy, "any"), compression=None, additional_headers=headers),
        ):
            pass
    assert elapsed < 2.5, f"150 requests took {elapsed:.2f} s: too slow to tell 61 from 120"
    passed = statuses.count(200)
    assert set(statuses) == {200, 429}, statuses
    assert 61 <= passed <= 61 + 20 * elapsed, (passed, elapsed)
    assert refused is not None and refused.headers["Retry-After"] == "1"
    assert refused.headers["content-type"] == "application/json"
    assert "rate_limit_per_second = 20" in refused.json()["detail"]
    assert denied.value.response.status_code == 429
    served = [
        replica.log.read_text().count(f'GET {marker} HTTP/1.1\\" 200')  # JSON lines
        for replica in ray_cluster.replicas
    ]
    assert sum(served) == passed and min(served) > 0, served
    time.sleep(3.5)
