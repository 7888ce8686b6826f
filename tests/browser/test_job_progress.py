"""Issue 9's jobs on the page, in Debian's Chromium: work that outlasts the server's wait comes
back as `202 {"job": ...}`; the page shows a progress bar (done / total) with a Cancel button,
follows the job to its result, and Cancel stops it."""

from pathlib import Path

import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# A REST step through the page's own API module (the one the lessons use), at 20 epochs/s: 300
# epochs take 15 s, far past the server's 1 s wait, so the route answers with a job.
START_LONG_STEP = """(n) => import('/static/js/lessons_api.js').then((api) => {
  window.longStep = api.sessionCommand(window.playground.session.id, { type: 'step', n })
    .then((session) => `done at ${session.epoch}`, (error) => `error: ${error.message}`);
})"""


def open_slow_page(page: Page, live_server: str) -> str:
    """The page at 20 epochs/s, its first frame drawn; the session id."""
    page.goto(f"{live_server}/#speed=20")
    page.wait_for_function(
        "() => window.playground && window.playground.frame"
        " && window.playground.frame.header.session_id === window.playground.session.id"
    )
    session_id: str = page.evaluate("() => window.playground.session.id")
    return session_id


def test_a_long_step_shows_a_progress_bar_and_cancel_stops_it(
    page: Page, live_server: str, page_errors: list[str], artifacts: Path
) -> None:
    """A 300-epoch REST step: a bar appears with its total, its done count grows, Cancel ends the
    job (the call says cancelled, the bar says so), and the session stopped well short of 300."""
    session_id = open_slow_page(page, live_server)
    page.evaluate(START_LONG_STEP, 300)
    bar = page.locator("#jobs .job")
    bar.wait_for(state="visible", timeout=10_000)
    assert bar.get_attribute("data-total") == "300"
    page.wait_for_function(
        "() => Number(document.querySelector('#jobs .job').dataset.done) >= 10", timeout=10_000
    )
    assert "Training" in bar.inner_text() and "/ 300" in bar.inner_text()
    page.screenshot(path=str(artifacts / "job-progress.png"))
    bar.locator(".job-cancel").click()
    outcome = page.evaluate("() => window.longStep")
    assert outcome.startswith("error:") and "cancelled" in outcome
    page.wait_for_function(
        "() => document.querySelector('#jobs .job')?.dataset.state === 'cancelled'"
    )
    # The page shows the session stopped too (its play button is play again).
    page.wait_for_function("() => window.playground.status === 'paused'")
    page.wait_for_function(
        "() => document.getElementById('play-button').getAttribute('aria-pressed') === 'false'"
    )
    page.screenshot(path=str(artifacts / "job-cancelled.png"))
    epoch = page.request.get(f"{live_server}/api/sessions/{session_id}").json()["epoch"]
    assert 0 < epoch < 300
    page.wait_for_timeout(1000)
    after = page.request.get(f"{live_server}/api/sessions/{session_id}").json()
    assert after["epoch"] == epoch and after["status"] != "running"
    assert page_errors == []


def test_a_job_followed_to_its_end_gives_the_usual_answer(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """A 40-epoch step at 20 epochs/s (2 s): the bar shows, then goes when the job is done, and the
    call resolves to the session at epoch 40, as a synchronous answer would."""
    open_slow_page(page, live_server)
    page.evaluate(START_LONG_STEP, 40)
    page.locator("#jobs .job").wait_for(state="visible", timeout=10_000)
    assert page.evaluate("() => window.longStep") == "done at 40"
    page.locator("#jobs .job").wait_for(state="detached")
    assert page_errors == []


def test_recording_a_long_run_restores_at_once_without_a_job(
    page: Page, live_server: str, page_errors: list[str], artifacts: Path
) -> None:
    """Time travel's "Record the run so far" on a 5,000-epoch run: since issue 10 the session
    recorded its own checkpoints while it trained, so nothing is replayed: the answer comes at
    once (no job bar stays up) and the slider covers the run (gold: the live epoch)."""
    page.goto(f"{live_server}/#speed=null&frame_rate=2")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.evaluate("() => window.playground.command({ type: 'step', n: 5000 })")
    page.wait_for_function(
        "() => window.playground.frame.header.epoch === 5000"
        " && window.playground.frame.header.status === 'paused'",
        timeout=60_000,
    )
    page.locator("#lessons-toggle").click()
    page.locator("#tab-timetravel").click()
    page.locator("#tt-record").click()
    page.wait_for_selector("#timetravel-pane[data-recorded='5000']", timeout=5_000)
    page.screenshot(path=str(artifacts / "job-replay.png"))
    assert page.locator("#jobs .job").count() == 0
    assert page_errors == []
