"""Share links in real Chromium: save a run from the page, open /r/{slug} as a stranger (the
trained network, boundary and whole curves at once, nothing retrained), Continue into a session
of one's own that trains on, and find the run in the gallery.

Gold: the run's export (GET /api/runs/{slug}): the curves the viewer draws are its history,
epoch for epoch; the boundary drawn is the network of its weights (weights_hash).
"""

import json

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import ARTIFACTS, record_errors, rest_command

pytestmark = pytest.mark.browser
EPOCHS = 40


def new_page(browser: Browser, errors: list[str]) -> Page:
    """A page in a context of its own: another visitor, no owner token."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    record_errors(page, errors)
    return page


def test_a_share_link_shows_the_run_at_once_and_continues(
    page: Page, browser: Browser, live_server: str, page_errors: list[str]
) -> None:
    """Save from the page (title, listed); a stranger's /r/{slug} draws epoch 40's frame and
    all 40 loss rows from its first response, opens no websocket; Continue forks a session of
    the stranger's own that trains; the gallery lists the run with its thumbnail."""
    page.goto(f"{live_server}/#dataset=xor&optimizer=adam&learning_rate=0.03")
    # A cold shared server's worker compiles the fast kernel first (~10 s on a loaded machine).
    page.wait_for_function("() => window.playground && window.playground.frame", timeout=60_000)
    session_id = page.evaluate("() => window.playground.session.id")
    rest_command(page, live_server, session_id, {"type": "step", "n": EPOCHS})
    # lastEpoch counts a frame when it arrives, `frame` is the last one drawn (the next
    # animation frame): the hash is read from epoch 40's frame once it is drawn.
    page.wait_for_function(
        f"() => window.playground.lastEpoch === {EPOCHS}"
        f" && window.playground.frame.header.epoch === {EPOCHS}"
    )
    original_hash = page.evaluate("() => window.playground.frame.header.weights_hash")
    page.fill("#run-title", "xor with adam")
    page.check("#run-public")
    page.click("#run-save-button")
    link = page.locator("#run-link")
    link.wait_for()
    url = link.get_attribute("href") or ""
    assert url.startswith("/r/") and len(url) == 15
    slug = url[3:]
    top = {"x": 0, "y": 0, "width": 1400, "height": 260}
    page.screenshot(path=str(ARTIFACTS / "save_run.png"), clip=top)
    saved = page.request.get(f"{live_server}/api/runs/{slug}").json()
    history = saved["export"]["history"]

    viewer = new_page(browser, page_errors)
    sockets: list[str] = []
    viewer.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        viewer.goto(f"{live_server}{url}")
        viewer.wait_for_function(
            "() => window.playground?.frame?.header.epoch === 40", timeout=10_000
        )
        assert viewer.locator("#run-banner").is_visible()
        assert "xor with adam" in viewer.locator("#run-banner").inner_text()
        assert not viewer.locator("#read-only").is_visible()
        shown = viewer.evaluate("""() => {
            const p = window.playground;
            const pixels = document.getElementById('output-heatmap').getContext('2d')
                .getImageData(0, 0, 8, 8).data;
            return {losses: p.losses.columns, grads: p.curves.grads.length,
                    hash: p.frame.header.weights_hash, readOnly: p.readOnly,
                    drawn: pixels.some((v) => v !== 0), state: p.state.dataset};
        }""")
        assert shown["losses"][0] == list(range(1, EPOCHS + 1))
        for drawn, saved_loss in zip(shown["losses"][1], history["train_loss"], strict=True):
            assert drawn == pytest.approx(saved_loss, rel=1e-6)  # float32 on the wire
        assert shown["grads"] == EPOCHS
        assert shown["hash"] == original_hash
        assert shown["readOnly"] and shown["drawn"] and shown["state"] == "xor"
        assert sockets == []  # drawn from the view alone: no session, no stream
        viewer.screenshot(path=str(ARTIFACTS / "share_link.png"))

        viewer.click("#run-continue")
        viewer.wait_for_function(
            "() => !window.playground.readOnly && !window.playground.session.id.startsWith('run-')"
            " && window.playground.frame.header.session_id === window.playground.session.id"
        )
        assert viewer.evaluate("() => location.pathname") == "/"
        assert not viewer.locator("#run-banner").is_visible()
        fork_id = viewer.evaluate("() => window.playground.session.id")
        assert fork_id != session_id
        assert viewer.evaluate("() => window.playground.lastEpoch") == EPOCHS
        viewer.evaluate("() => window.playground.command({ type: 'step', n: 5 })")
        viewer.wait_for_function(f"() => window.playground.lastEpoch === {EPOCHS + 5}")
        viewer.evaluate("() => window.playground.dispose()")  # the fork stops using the server

        viewer.goto(f"{live_server}/gallery?dataset=xor")
        card = viewer.locator(f'.gallery-card[data-slug="{slug}"]')
        card.wait_for()
        assert "xor with adam" in card.inner_text() and "2-4-2-1" in card.inner_text()
        assert viewer.evaluate(
            "(slug) => document.querySelector(`[data-slug='${slug}'] canvas`).width", slug
        ) == saved["thumbnail"]["size"]
        viewer.screenshot(path=str(ARTIFACTS / "gallery.png"))
    finally:
        viewer.evaluate("() => window.playground?.dispose()")
        viewer.context.close()
    assert page_errors == [], json.dumps(page_errors)
