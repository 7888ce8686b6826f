"""The repo's deploy/nginx.conf, run by Debian's nginx in front of the two replicas (issue 12).

nginx runs unprivileged from a copy of deploy/nginx.conf whose listen port and upstream servers
are replaced by the test's; nothing else changes. Gold: each replica's own log names the
websocket it accepted, so both replicas serve the same session's sockets through the proxy.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.scale.conftest import ROOT, Cluster, create, free_port, stop_group, ws_url
from tests.scale.test_scale_replicas import frame_epochs, receive_until

pytestmark = pytest.mark.ray
NGINX = Path("/usr/sbin/nginx")


@pytest.fixture(scope="module")
def proxy(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx with the repo's configuration on a loopback port, in front of both replicas."""
    assert NGINX.is_file(), (
        "Debian's nginx is missing: apt-get install -y nginx (scripts/test.sh's ray step does)")
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "tmp").mkdir()
    port = free_port()
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+", config, flags=re.M)
    assert len(servers) == 2, "deploy/nginx.conf lists two example replicas"
    for line, replica in zip(servers, ray_cluster.replicas, strict=True):
        config = config.replace(line, re.sub(r":\d+", f":{replica.port}", line), 1)
    config, listens = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", config)
    assert listens == 1
    (prefix / "nginx.conf").write_text(config)
    log = (prefix / "nginx.log").open("wb")
    process = subprocess.Popen(
        [str(NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr",
         "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        answer: str = "no answer"
        while True:
            assert process.poll() is None, (prefix / "nginx.log").read_text()
            try:
                reply = httpx.get(url + "/health", timeout=2)
                if reply.status_code == 200:
                    break
                answer = f"{reply.status_code} {reply.text[:300]}"
            except httpx.HTTPError as error:
                answer = repr(error)
            assert time.monotonic() < deadline, f"nginx on {port}: /health gave {answer}"
            time.sleep(0.1)
        yield url
    finally:
        stop_group(process)
        log.close()


def test_websockets_through_nginx_reach_both_replicas(
    ray_cluster: Cluster, proxy: str
) -> None:
    """Two websockets to one session through nginx (least_conn, no affinity) land on the two
    replicas; one drives the session, both watch it advance, and the other pauses it."""
    created = create(proxy, dataset="xor", speed=100)
    sid, token = created["id"], created["owner_token"]
    with (connect(ws_url(proxy, sid), compression=None, max_size=None) as first,
          connect(ws_url(proxy, sid), compression=None, max_size=None) as second):
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
    accepted = f'WebSocket /ws/sessions/{sid}\\" [accepted]'
    logs = [replica.log.read_text() for replica in ray_cluster.replicas]
    assert [log.count(accepted) for log in logs] == [1, 1]
