"""Issue 9's page as one of many users, in Debian's Chromium: the owner token kept in
localStorage and sent on every call, a reload that reopens the learner's own session, another
browser watching read-only, and a lost worker told apart from a delete."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request

from tests.browser.conftest import record_errors
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

TOKEN_KEY = "nn-playground.owner"


def open_page(page: Page, url: str) -> str:
    """Load the page, wait for its first frame; the session id it shows."""
    page.goto(url)
    page.wait_for_function(
        "() => window.playground && window.playground.session && window.playground.frame"
        " && window.playground.frame.header.session_id === window.playground.session.id"
    )
    session_id: str = page.evaluate("() => window.playground.session.id")
    return session_id


def step_to(page: Page, epoch: int, n: int) -> None:
    """Step n epochs over the page's websocket and wait for the paused frame of `epoch`."""
    page.evaluate(f"() => window.playground.command({{ type: 'step', n: {n} }})")
    page.wait_for_function(
        f"() => window.playground.frame.header.epoch === {epoch}"
        " && window.playground.frame.header.status === 'paused'"
    )


def test_a_reload_reopens_the_same_session_with_its_curve(
    page: Page, live_server: str, page_errors: list[str], artifacts: Path
) -> None:
    """The first create hands out a token, kept in localStorage; after 40 epochs a reload attaches
    to the same session (no new create), sends the token as a Bearer header and on the websocket,
    and its hello brings the whole loss curve back (epochs 1..40)."""
    session_id = open_page(page, f"{live_server}/")
    token = page.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')")
    assert isinstance(token, str) and len(token) >= 22
    step_to(page, 40, 40)

    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if "/api/" in request.url else None)
    page.reload()
    page.wait_for_function(
        f"() => window.playground.frame && window.playground.frame.header.epoch === 40"
        f" && window.playground.session.id === '{session_id}'"
    )
    page.wait_for_function("() => window.playground.losses.columns[0].length === 40")
    assert page.evaluate("() => window.playground.losses.columns[0]") == list(range(1, 41))
    assert not any(r.method == "POST" and r.url.endswith("/api/sessions") for r in sent)
    own = [r for r in sent if f"/api/sessions/{session_id}" in r.url]
    assert own and all(r.headers.get("authorization") == f"Bearer {token}" for r in own)
    # The websocket proved ownership: the controls stay usable and commands are taken.
    page.wait_for_function("() => window.playground.link.authPending === false")
    assert page.evaluate("() => window.playground.readOnly") is False
    assert page.locator("#read-only").is_hidden()
    step_to(page, 45, 5)
    # The "Use from Python" panel shows how to pass the token (header and websocket auth message).
    page.locator("#python-panel summary").click()
    rest = page.locator("#python-rest").inner_text()
    websocket = page.locator("#python-ws").inner_text()
    assert f'TOKEN = "{token}"' in rest and '"Authorization": f"Bearer {TOKEN}"' in rest
    assert '{"type": "auth", "token": TOKEN}' in websocket
    watch = page.locator("#watch-link").get_attribute("href")
    assert watch == f"{live_server}/?session={session_id}"
    page.screenshot(path=str(artifacts / "owner-reload-same-session.png"))
    assert page_errors == []


def test_a_token_the_server_does_not_know_is_replaced(page: Page, live_server: str) -> None:
    """A token the server never issued (or forgot in a restart) in localStorage, and a remembered
    session that is gone: the create is refused (401) once, sent again without the token, and the
    page adopts the new token the server hands out; it owns its new session."""
    stale = "stale-token-" + "x" * 31
    page.add_init_script(
        f"localStorage.getItem('{TOKEN_KEY}') || localStorage.setItem('{TOKEN_KEY}', '{stale}');"
        "sessionStorage.setItem('nn-playground.session', JSON.stringify({id: 'gone', hash: ''}));"
    )
    open_page(page, f"{live_server}/")
    token = page.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')")
    assert token and token != stale
    page.wait_for_function("() => window.playground.link.authPending === false")
    assert page.evaluate("() => window.playground.readOnly") is False
    step_to(page, 3, 3)


def test_another_browser_watches_read_only_and_its_commands_are_refused(
    browser: Browser, page: Page, live_server: str, artifacts: Path
) -> None:
    """A second browser context (no token) opens ?session=ID: it sees the frames, says "watching
    read-only", its controls are disabled, and its websocket and REST commands are refused while
    the owner's session keeps its epoch; "Start my own session" then gives it one of its own."""
    session_id = open_page(page, f"{live_server}/")
    step_to(page, 10, 10)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    viewer = context.new_page()
    viewer_errors: list[str] = []
    record_errors(viewer, viewer_errors)
    try:
        viewer.goto(f"{live_server}/?session={session_id}")
        viewer.wait_for_function(
            f"() => window.playground && window.playground.frame"
            f" && window.playground.frame.header.session_id === '{session_id}'"
            " && window.playground.frame.header.epoch === 10"
        )
        note = viewer.locator("#read-only")
        note.wait_for(state="visible")
        assert "Watching read-only" in note.inner_text() and session_id in note.inner_text()
        assert viewer.locator("#play-button").is_disabled()
        assert viewer.locator("#step-button").is_disabled()
        assert viewer.locator("#learning-rate").is_disabled()
        assert viewer.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')") is None
        assert "TOKEN" not in viewer.locator("#python-rest").inner_text()

        # A command over its websocket is refused, and the page says why.
        viewer.evaluate("() => window.playground.command({ type: 'step', n: 5 })")
        viewer.locator("#error").wait_for(state="visible")
        assert "read-only" in viewer.locator("#error").inner_text()
        # Over REST, without the owner's token: 401; the session has not moved.
        refused = viewer.request.post(
            f"{live_server}/api/sessions/{session_id}/commands", data={"type": "step", "n": 5}
        )
        assert refused.status in (401, 403)
        address = f"{live_server}/api/sessions/{session_id}"
        assert viewer.request.delete(address).status in (401, 403)
        assert viewer.request.get(address).json()["epoch"] == 10

        # The owner goes on; the watcher sees it.
        step_to(page, 15, 5)
        viewer.wait_for_function("() => window.playground.frame.header.epoch === 15")
        viewer.screenshot(path=str(artifacts / "owner-watch-read-only.png"))

        # Its own session: a new id, controls enabled, a token of its own.
        viewer.locator("#read-only-own").click()
        viewer.wait_for_function(
            f"() => window.playground.session && window.playground.session.id !== '{session_id}'"
            " && window.playground.frame.header.session_id === window.playground.session.id"
            " && !window.playground.readOnly"
        )
        assert viewer.locator("#read-only").is_hidden()
        assert viewer.locator("#play-button").is_enabled()
        assert "session=" not in viewer.url
        assert viewer.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')")
        assert page.evaluate("() => window.playground.session.id") == session_id
        assert viewer_errors == []
    finally:
        viewer.evaluate("() => window.playground?.dispose()")
        context.close()


def children(pid: int) -> set[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


@pytest.fixture
def own_server() -> Iterator[tuple[str, set[int]]]:
    """A server of this test's own (its worker may be killed): its URL and its worker pids.
    Checkpoints off: a killed worker's session is lost (with them it is restored, the page
    keeps it: tests/browser/test_session_link.py)."""
    before = children(os.getpid())
    with LiveServer(worker_processes=1, checkpoint_seconds=0) as server:
        deadline = time.monotonic() + 10
        while not (workers := children(os.getpid()) - before) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server.url, workers


def test_a_lost_worker_is_told_apart_from_a_delete(
    page: Page, own_server: tuple[str, set[int]], artifacts: Path
) -> None:
    """The worker process running the page's session is killed: the page says the server lost
    this session's worker (not the "starting a new session" of a delete alone) and starts afresh."""
    url, workers = own_server
    assert workers, "the server's worker process was not found"
    session_id = open_page(page, f"{url}/")
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    page.locator("#error").wait_for(state="visible")
    page.wait_for_function(
        "() => document.getElementById('error').textContent"
        '.includes("The server lost this session\'s worker")'
    )
    page.screenshot(path=str(artifacts / "owner-worker-lost.png"))
    page.wait_for_function(
        f"() => window.playground.session && window.playground.session.id !== '{session_id}'"
        " && window.playground.frame.header.session_id === window.playground.session.id",
        timeout=30_000,
    )


def test_a_limit_shows_its_detail_and_the_page_waits_its_retry_after(
    browser: Browser, artifacts: Path
) -> None:
    """A server allowing one session per address: a second tab's create gets 429. The page shows
    the detail naming the limit, says when it tries again, and asks again only after Retry-After
    (2 s), not in a loop; once the first session is deleted, that one retry gets a session."""
    with LiveServer(
        worker_processes=1, max_sessions_per_address=1, quota_retry_after_seconds=2
    ) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        try:
            first = context.new_page()
            first_id = open_page(first, f"{server.url}/")
            token = first.evaluate(f"() => localStorage.getItem('{TOKEN_KEY}')")
            second = context.new_page()
            creates: list[float] = []
            second.on(
                "request",
                lambda r: (
                    creates.append(time.monotonic())
                    if r.method == "POST" and r.url.endswith("/api/sessions")
                    else None
                ),
            )
            second.goto(f"{server.url}/#seed=3")
            second.wait_for_function(
                "() => document.getElementById('error').textContent.includes('Trying again in 2 s')"
            )
            shown = second.locator("#error").inner_text()
            assert "max_sessions_per_address" in shown
            second.screenshot(path=str(artifacts / "owner-limit-429.png"))
            refused_at = creates[-1]
            # The first tab goes away (its session stays: a reload would reopen it), then its
            # owner deletes the session over REST, which frees the address's one place.
            first.close()
            deleted = second.request.delete(
                f"{server.url}/api/sessions/{first_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert deleted.status == 204
            second.wait_for_function(
                "() => window.playground.session && window.playground.frame"
                " && window.playground.frame.header.session_id === window.playground.session.id",
                timeout=10_000,
            )
            retries = [t for t in creates if t > refused_at]
            assert len(retries) == 1 and retries[0] - refused_at >= 1.9
        finally:
            context.close()
