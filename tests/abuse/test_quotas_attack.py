"""Issue 9, "one client takes everything": quotas, the rate limit and unwatched sessions.

Before: one client created 200 sessions in 1.1 s, then everyone got 429 without Retry-After;
no per-client or per-owner limit, no rate limit; a closed tab's session trained on to its
1,000,000-epoch budget. Each attack here comes from its own loopback address (127.0.0.2-4), so
the limits of one do not spill into another's, and the victim (127.0.0.1) must still be served.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from websockets.sync.client import connect

from bench.abuse_lib import VICTIM, Server, attack_grab, http_client
from tests.abuse.conftest import http, run


def test_a_200_session_grab_meets_the_per_address_quota(server: Server) -> None:
    """200 creates from one address, each as a new owner: at most max_sessions_per_address
    (60) succeed; every 429 carries Retry-After and names a limit; the victim (another
    address) still creates a session."""
    outcome = run(attack_grab(server.base, 200, source="127.0.0.2"))
    codes = outcome.facts["codes"]
    assert set(codes) <= {201, 429}, outcome.summary
    assert codes.count(201) <= 60, outcome.summary
    refused = [r for c, r in zip(codes, outcome.facts["retry_after"], strict=True) if c == 429]
    assert refused and all(r is not None and int(r) >= 1 for r in refused), outcome.summary
    assert any("max_sessions_per_address" in d or "rate_limit" in d
               for d in outcome.facts["details"]), outcome.facts["details"]
    assert outcome.facts["victim_code"] == 201, outcome.summary


def test_one_owner_meets_its_session_and_running_quotas(server: Server) -> None:
    """One token reused: 10 sessions (max_sessions_per_owner), then 429 naming it; 4 playing
    (max_running_per_owner), the 5th play a 429 naming it, both with Retry-After."""
    outcome = run(attack_grab(server.base, 12, one_token=True, source="127.0.0.3"))
    codes = outcome.facts["codes"]
    assert sorted(codes) == [201] * 10 + [429] * 2, outcome.summary
    assert any("max_sessions_per_owner" in d for d in outcome.facts["details"]), outcome.facts
    with http(server, "127.0.0.3") as owner:
        made = [owner.post("/api/sessions", json={}).json() for _ in range(5)]
        tokens = {m["owner_token"] for m in made}
        assert len(tokens) == 5  # five owners: the sessions below belong to the first
        first = made[0]
        auth = {"Authorization": f"Bearer {first['owner_token']}"}
        ids = [first["id"]] + [
            owner.post("/api/sessions", json={}, headers=auth).json()["id"] for _ in range(4)
        ]
        plays = [owner.post(f"/api/sessions/{i}/commands", json={"type": "play"}, headers=auth)
                 for i in ids]
        assert [p.status_code for p in plays] == [200] * 4 + [429], [p.text for p in plays]
        assert "max_running_per_owner" in plays[-1].text and plays[-1].headers["retry-after"]
        for m in made:
            owner.delete(f"/api/sessions/{m['id']}",
                         headers={"Authorization": f"Bearer {m['owner_token']}"})
        for session_id in ids[1:]:
            owner.delete(f"/api/sessions/{session_id}", headers=auth)


def test_the_rate_limit_stops_a_flood_but_not_the_victim(server: Server) -> None:
    """300 requests at once from one address: 429s with Retry-After and a detail naming the
    rate limit setting; meanwhile the victim's own requests are answered 200."""
    async def flood() -> tuple[list[int], list[httpx.Response], list[int]]:
        async with http_client(server.base, "127.0.0.4") as attacker, \
                http_client(server.base, VICTIM) as victim:
            attack = asyncio.gather(*(attacker.get("/api/registry") for _ in range(300)))
            served = [(await victim.get("/api/registry")).status_code for _ in range(5)]
            responses = await attack
            return [r.status_code for r in responses], responses, served

    codes, responses, served = run(flood())
    assert set(codes) <= {200, 429}, set(codes)
    limited = [r for r in responses if r.status_code == 429]
    assert limited, "no 429 among 300 requests at once"
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert "rate_limit" in limited[0].json()["detail"], limited[0].text
    assert served == [200] * 5


def test_an_unwatched_session_pauses_and_resumes_when_watched(server: Server) -> None:
    """A playing session that nobody watches or calls is paused after unwatched_pause_seconds
    (2 s on the tests' server): it stops training; a new websocket subscriber resumes it."""
    with http(server, "127.0.0.5") as owner:
        created = owner.post("/api/sessions", json={"speed": 100}).json()
        auth = {"Authorization": f"Bearer {created['owner_token']}"}
        path = f"/api/sessions/{created['id']}"
        assert owner.post(f"{path}/commands", json={"type": "play"}, headers=auth).is_success
        time.sleep(5.0)  # no call, no watcher: 2 s, then the janitor's turn (every 2 s)
        first = owner.get(path).json()
        time.sleep(0.5)
        second = owner.get(path).json()
        assert first["status"] == "paused" and second["epoch"] == first["epoch"], (first, second)
        # max_queue=None: this client reads only the hello, and with a bounded queue it would
        # stop reading and wait out its close_timeout (10 s) behind the frames that follow.
        with connect(f"{server.ws_base}{created['ws_url']}", max_size=None,
                     max_queue=None) as ws:
            assert json.loads(ws.recv(5))["type"] == "hello"
            time.sleep(0.5)
            resumed = owner.get(path).json()
        assert resumed["status"] == "running", resumed
        owner.delete(path, headers=auth)
