"""The classroom in real Chromium: a learner joins from the page, the teacher's dashboard shows
every learner's live tile, only the teacher sees it, a tile opens the session read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import record_errors

pytestmark = pytest.mark.browser


def learner_session(base: str, speed: float) -> tuple[str, str]:
    """A learner's session made over REST (its own owner), playing at `speed` epochs/s."""
    body = httpx.post(f"{base}/api/sessions", json={"speed": speed, "frame_rate": 5}).json()
    headers = {"Authorization": f"Bearer {body['owner_token']}"}
    played = httpx.post(f"{base}/api/sessions/{body['id']}/commands", json={"type": "play"},
                        headers=headers)
    assert played.status_code == 200, played.text
    return body["id"], body["owner_token"]


def tile_state(page: Page) -> list[dict[str, Any]]:
    """Every tile on the dashboard: its session, name, epoch, and how many colours it drew."""
    return list(page.evaluate("""() => [...document.querySelectorAll('.tile')].map((tile) => {
        const canvas = tile.querySelector('canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const colours = new Set();
        for (let i = 0; i < data.length; i += 4) {
            colours.add(data[i] * 65536 + data[i + 1] * 256 + data[i + 2]);
        }
        return {session: tile.dataset.session, name: tile.querySelector('.tile-name').textContent,
                epoch: Number(tile.dataset.epoch || -1), colours: colours.size, size: canvas.width};
    })"""))


def test_class_dashboard_shows_every_learners_live_tile(
    browser: Browser, page: Page, live_server: str, page_errors: list[str], artifacts: Path,
) -> None:
    """Gold: the learners the test made (one joined through the page's "Join a class", two
    over REST) each get a 24x24 tile with their name that is drawn (more than one colour) and
    whose epoch advances while they train; a tile's link opens that session read-only in the
    playground; "Pause all" pauses all three (their tiles say so, the learner's page is told);
    a pushed preset shows in the learner page's controls; a wrong token gets the refusal and no
    tile."""
    created = httpx.post(f"{live_server}/api/classes", json={"title": "Period 3"}).json()
    code, token = created["code"], created["teacher_token"]
    # A learner in the page: its own session, joined by typing the code and a name.
    page.goto(f"{live_server}/#speed=30&frame_rate=5")
    page.wait_for_function("() => window.playground && window.playground.session")
    page.click("#class-join-summary")
    page.fill("#class-join-code", code.lower())
    page.fill("#class-join-name", "Ada")
    page.click("#class-join-button")
    page.wait_for_function("() => document.getElementById('class-leave').hidden === false")
    assert code in page.inner_text("#class-join-status")
    page_session = page.evaluate("() => window.playground.session.id")
    page.evaluate("() => window.playground.togglePlay()")
    sessions = [learner_session(live_server, 20.0) for _ in range(2)]
    for (session, owner), name in zip(sessions, ("Grace", "Alan"), strict=True):
        joined = httpx.post(f"{live_server}/api/classes/{code}/join",
                            json={"session_id": session, "name": name},
                            headers={"Authorization": f"Bearer {owner}"})
        assert joined.status_code == 200, joined.text

    teacher = browser.new_context(viewport={"width": 1100, "height": 700})
    dashboard = teacher.new_page()
    record_errors(dashboard, page_errors)
    try:
        dashboard.goto(f"{live_server}/class/{code}#token={token}")
        dashboard.wait_for_function("""() => {
            const tiles = [...document.querySelectorAll('.tile')];
            return tiles.length === 3 && tiles.every((t) => Number(t.dataset.epoch || -1) > 0);
        }""")
        assert "token" not in dashboard.url  # the token left the address bar
        first = {t["session"]: t for t in tile_state(dashboard)}
        assert {t["name"] for t in first.values()} == {"Ada", "Grace", "Alan"}
        assert set(first) == {page_session, *(s for s, _ in sessions)}
        assert all(t["size"] == 24 and t["colours"] > 1 for t in first.values())
        # Live: every tile's epoch moves on.
        dashboard.wait_for_function("""(before) => [...document.querySelectorAll('.tile')].every(
            (t) => Number(t.dataset.epoch) > before[t.dataset.session])""",
            arg={s: t["epoch"] for s, t in first.items()})
        dashboard.screenshot(path=str(artifacts / "class_dashboard.png"))
        # A tile opens that learner's session, read-only.
        with teacher.expect_page() as opened:
            dashboard.click(f".tile[data-session='{sessions[0][0]}']")
        watched = opened.value
        watched.wait_for_function("() => window.playground && window.playground.session")
        assert f"session={sessions[0][0]}" in watched.url
        watched.wait_for_selector("#read-only", state="visible")
        watched.evaluate("() => window.playground.leave()")
        watched.close()
        # Pause all: every learner's tile says paused, and the learner's page is told.
        dashboard.click("#class-pause")
        dashboard.wait_for_function("""() => document.getElementById('class-result')
            .textContent.startsWith('Paused 3 sessions')""")
        dashboard.wait_for_function("""() => [...document.querySelectorAll('.tile')]
            .every((t) => t.classList.contains('status-paused'))""")
        page.wait_for_function("""() => document.getElementById('error')
            .textContent.includes('paused the class')""")
        # A preset reaches every learner; the learner's page adopts it into its controls.
        pushed = httpx.post(f"{live_server}/api/classes/{code}/preset", json={"dataset": "xor"},
                            headers={"Authorization": f"Bearer {token}"})
        assert pushed.status_code == 200 and len(pushed.json()["done"]) == 3, pushed.text
        page.wait_for_function("() => window.playground.state.dataset === 'xor'")
    finally:
        teacher.close()

    stranger = browser.new_context()
    refused = stranger.new_page()
    record_errors(refused, page_errors)
    try:
        refused.goto(f"{live_server}/class/{code}#token=not-the-teacher")
        refused.wait_for_selector("#class-auth", state="visible")
        assert "not the teacher token" in refused.inner_text("#class-refusal")
        assert refused.locator(".tile").count() == 0
    finally:
        stranger.close()
    for session, owner in sessions:
        httpx.delete(f"{live_server}/api/sessions/{session}",
                     headers={"Authorization": f"Bearer {owner}"})
    # The refused socket's close is a console error in Chromium ("... 4403"): not the page's.
    assert [e for e in page_errors if "4403" not in e] == []
