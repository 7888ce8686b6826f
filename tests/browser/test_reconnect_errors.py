"""The page's reconnect when its session cannot be read for a moment (issue 12: behind nginx, a
replica died and nginx has no live replica for a few seconds: 502 "no live upstreams"; or a
replica answers 503 "restarting; try again"). That is not a lost session: the page asks again
and keeps its session and its curve. Only a 404 means the session is gone."""

from typing import Any

import pytest
from playwright.sync_api import Page, Route

from tests.browser.conftest import rest_command

pytestmark = pytest.mark.browser


def wait_paused_at(page: Page, epoch: int) -> None:
    """Wait until the page draws the paused frame of `epoch`."""
    page.wait_for_function(
        f"() => window.playground.frame.header.epoch === {epoch}"
        " && window.playground.frame.header.status === 'paused'"
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, "<html><body>502 Bad Gateway</body></html>"),  # nginx: no live upstreams
        (503, '{"detail": "session abc: its shard is restarting; try again"}'),
    ],
)
def test_a_reconnect_that_meets_a_server_error_keeps_the_session(
    page: Page, live_server: str, page_errors: list[str], status: int, body: str
) -> None:
    """The socket closes and the page's first two reads of its session answer `status`; the
    third is the server's. The page keeps the same session (no new one at epoch 0), says it is
    reconnecting meanwhile and clears that once back, and its loss history runs 1..80 (50
    epochs before, 30 stepped over REST while it was away). Gold: the two steps' epochs."""
    page.goto(f"{live_server}/#frame_rate=5")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.evaluate("() => window.playground.command({ type: 'step', n: 50 })")
    wait_paused_at(page, 50)
    session_id = page.evaluate("() => window.playground.session.id")
    refused: list[str] = []

    def route(call: Route) -> None:
        if call.request.method == "GET" and len(refused) < 2:
            refused.append(call.request.url)
            call.fulfill(status=status, body=body, content_type="text/html")
        else:
            call.continue_()

    page.route(f"**/api/sessions/{session_id}", route)
    page.evaluate("() => window.playground.link.stream.socket.close()")
    page.wait_for_function(
        "() => document.querySelector('#error').innerText.includes('reconnecting')"
    )
    assert rest_command(page, live_server, session_id, {"type": "step", "n": 30})["epoch"] == 80
    wait_paused_at(page, 80)
    assert len(refused) == 2
    assert page.evaluate("() => window.playground.session.id") == session_id
    curve: Any = page.evaluate("() => window.playground.losses.columns[0]")
    assert curve == list(range(1, 81))
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    # The refused reads are the only console errors (Chromium logs a failed resource load).
    assert [e for e in page_errors if f"status of {status}" not in e] == []
