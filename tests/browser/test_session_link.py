"""The page's link to its session when the socket closes: the same session again, or a new one."""

import os
import signal
import time

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import owner_headers, rest_command
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def wait_paused_at(page: Page, epoch: int) -> None:
    """Wait until the page draws the paused frame of `epoch`."""
    page.wait_for_function(
        f"() => window.playground.frame.header.epoch === {epoch}"
        " && window.playground.frame.header.status === 'paused'"
    )


def test_a_closed_socket_watches_the_same_session_again(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """The socket drops (as when the server closes a slow client) and 300 epochs are trained over
    REST meanwhile: the page subscribes to the same session and its loss history runs 1..500."""
    page.goto(f"{live_server}/#frame_rate=5")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.evaluate("() => window.playground.command({ type: 'step', n: 200 })")
    wait_paused_at(page, 200)
    session_id = page.evaluate("() => window.playground.session.id")
    page.evaluate("() => window.playground.link.stream.socket.close()")
    assert rest_command(page, live_server, session_id, {"type": "step", "n": 300})["epoch"] == 500
    wait_paused_at(page, 500)
    assert page.evaluate("() => window.playground.session.id") == session_id
    epochs = page.evaluate("() => window.playground.losses.columns[0]")
    assert epochs == list(range(1, 501))
    assert page_errors == []


def test_a_deleted_session_is_replaced_by_a_new_one(page: Page, live_server: str) -> None:
    """DELETE over REST: the page is told `removed`, says so and starts a new session at epoch 0."""
    page.goto(f"{live_server}/")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.evaluate("() => window.playground.command({ type: 'step', n: 20 })")
    wait_paused_at(page, 20)
    session_id = page.evaluate("() => window.playground.session.id")
    address = f"{live_server}/api/sessions/{session_id}"
    assert page.request.delete(address, headers=owner_headers(page)).status == 204
    page.wait_for_function(
        "(id) => window.playground.session && window.playground.session.id !== id"
        " && window.playground.frame.header.session_id === window.playground.session.id",
        arg=session_id,
    )
    assert "starting a new session" in page.locator("#error").inner_text()
    assert page.evaluate("() => window.playground.frame.header.epoch") == 0
    assert page.evaluate("() => window.playground.losses.length") == 0


def test_a_killed_worker_s_session_is_restored_in_the_page_without_a_new_session(
    page: Page, page_errors: list[str]
) -> None:
    """Issue 10: kill -9 of the worker used to make the page start a new session at epoch 0.
    Now the server restores it from its checkpoint: the page keeps the same session id, shows
    a notice naming the epoch, and redraws the whole curve (epochs 1..30, gold: the 30-epoch
    step it made before the kill), paused."""
    with LiveServer(worker_processes=1, checkpoint_seconds=0.2) as live:
        manager = live.app.state.manager
        page.goto(f"{live.url}/#frame_rate=10")
        page.wait_for_function("() => window.playground && window.playground.frame")
        page.evaluate("() => window.playground.command({ type: 'step', n: 30 })")
        wait_paused_at(page, 30)
        session_id = page.evaluate("() => window.playground.session.id")
        deadline = time.monotonic() + 30
        while manager.standby is None or not manager.standby.ready:
            assert time.monotonic() < deadline, "no warm standby worker"
            time.sleep(0.05)
        os.kill(manager.workers[0].runner.pid, signal.SIGKILL)  # our own child process
        page.wait_for_function(
            "() => document.querySelector('#error').innerText.includes('back at epoch 30')"
        )
        wait_paused_at(page, 30)
        page.wait_for_function("() => window.playground.losses.length === 30")
        assert page.evaluate("() => window.playground.session.id") == session_id
        assert page.evaluate("() => window.playground.losses.columns[0]") == list(range(1, 31))
        page.evaluate("() => window.playground?.dispose()")
    assert page_errors == []
