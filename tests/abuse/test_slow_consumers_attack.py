"""Issue 9, "slow consumers are cheap to attack with", against a real server.

Before: 100 websockets that never read cost +325 MB of server RSS (kept after they left) and
280 MB of kernel buffers, stalled /health 5.5 s, and each was held > 90 s; a 10 MB websocket
message was buffered whole before the 64 KB check. Now a non-reader is closed within
send_timeout_seconds (2 s on the tests' server) of its first unsent frame, its memory is
returned, and the server's websocket max message size is the documented cap
(max_ws_message_bytes).
"""

from __future__ import annotations

import httpx

from bench.abuse_lib import (
    Monitor,
    Server,
    attack_big_message,
    attack_non_readers,
    attacking_from,
)
from tests.abuse.conftest import SERVER_ENV, assert_responsive, quiet_and_attacked, run

SEND_TIMEOUT = float(SERVER_ENV["NN_PLAYGROUND_SEND_TIMEOUT_SECONDS"])
MB = 1_000_000


def test_non_reading_sockets_are_closed_and_their_memory_returned(
    server: Server, monitor: Monitor
) -> None:
    """100 websockets that never read, on a session sending 200x200 grids flat out: every one
    closed by the server within the hold (send_timeout_seconds + the time to fill its buffers),
    server RSS back within 40 MB of where it started, /health p99 < 50 ms meanwhile."""
    # From four addresses: 25 connects each stay within the rate limit's burst.
    sources = [f"127.0.2.{n}" for n in range(1, 5)]
    with attacking_from("127.0.0.51"):
        quiet, attacked, outcome = quiet_and_attacked(monitor, attack_non_readers(
            server, sockets=100, hold=SEND_TIMEOUT + 6.0, sources=sources))
    facts = outcome.facts
    assert facts["closed"] == 100, outcome.summary
    assert facts["rss_after"] - facts["rss_before"] < 40 * MB, outcome.summary
    assert facts["rss_peak"] - facts["rss_before"] < 150 * MB, outcome.summary
    assert_responsive(quiet, attacked, "100 non-reading sockets")
    metrics = httpx.get(f"{server.base}/metrics", timeout=10).text
    closes = [line for line in metrics.splitlines()
              if line.startswith("nn_slow_client_closes") and not line.startswith("#")]
    assert closes and float(closes[0].split()[-1]) >= 1, closes


def test_a_10_mb_websocket_message_is_refused_at_the_cap(server: Server) -> None:
    """A 10 MB text message: the server closes with 1009 (message too big) as soon as the
    frame's length is read, without buffering it (web RSS grows < 5 MB)."""
    with attacking_from("127.0.0.50"):
        outcome = run(attack_big_message(server, 10.0))
    assert outcome.facts["close_code"] == 1009, outcome.summary
    assert outcome.facts["seconds"] < 3.0, outcome.summary
    assert outcome.facts["rss_growth"] < 5 * MB, outcome.summary
