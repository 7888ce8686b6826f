"""Issue 8's transport in Debian's Chromium: the pace control, reset and restart, data edits
that keep the model, and the "Use from Python" panel driving the session the page shows."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.test_page import epoch_counter, header, open_playground

pytestmark = pytest.mark.browser

# Where every browser test leaves its screenshots (gitignored); docs/screenshots has copies.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def session(page: Page) -> dict[str, Any]:
    """The session as the server describes it now (not the page's copy)."""
    result: dict[str, Any] = page.evaluate(
        "() => fetch('/api/sessions/' + window.playground.session.id).then(r => r.json())"
    )
    return result


def settled(page: Page) -> None:
    """Wait until every `set` the page sent is acked."""
    page.wait_for_function("() => window.playground.pendingSets.size === 0")


def pause(page: Page) -> None:
    """Press pause and wait until the server and the drawn frame both say paused."""
    page.locator("#play-button").click()
    page.wait_for_function(
        "() => window.playground.session.status === 'paused'"
        " && window.playground.frame.header.status === 'paused'"
    )


def epochs_over(page: Page, seconds: float) -> tuple[int, float]:
    """Epochs the server trained in about `seconds` of wall time, and the exact time taken."""
    first, started = session(page)["epoch"], time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    last, ended = session(page)["epoch"], time.monotonic()
    return last - first, ended - started


def test_speed_select_paces_training_and_switches_live(
    page: Page, live_server: str, artifacts: Path
) -> None:
    """60 epochs/s by default (the circle takes seconds), 10/s when chosen, max runs far faster;
    the switches keep the weights, and the speed lives in the URL."""
    open_playground(page, live_server)
    options = page.locator("#speed option").evaluate_all("os => os.map(o => o.textContent)")
    assert options == ["1", "3", "10", "30", "60", "120", "300", "1000", "max"]
    assert page.locator("#speed").input_value() == "60"
    assert page.locator('label[for="frame-rate"]').text_content() == "Frames per second (drawing)"
    assert session(page)["config"]["speed"] == 60
    assert "speed=60" in page.url

    # The default pace: after 2 s of play the circle is still early (at max it is ~5,000).
    page.locator("#play-button").click()
    page.wait_for_function("() => window.playground.session.status === 'running'")
    page.wait_for_timeout(2000)
    assert session(page)["epoch"] < 400
    pause(page)

    page.locator("#speed").select_option("10")
    settled(page)
    assert session(page)["config"]["speed"] == 10 and "speed=10&" in page.url
    page.locator("#play-button").click()
    page.wait_for_function("() => window.playground.session.status === 'running'")
    trained, seconds = epochs_over(page, 3)
    assert 15 <= trained <= 45, f"{trained} epochs in {seconds:.2f} s at 10 epochs/s"
    page.screenshot(path=SCREENSHOTS / "page-pace-control.png")
    pause(page)

    # Paused, switch to max: same weights and epoch; then play trains far faster than 60/s.
    before = session(page)
    page.locator("#speed").select_option("null")
    settled(page)
    after = session(page)
    assert after["config"]["speed"] is None and "speed=null&" in page.url
    assert (after["weights_hash"], after["epoch"]) == (before["weights_hash"], before["epoch"])
    page.locator("#play-button").click()
    page.wait_for_function("() => window.playground.session.status === 'running'")
    trained, seconds = epochs_over(page, 1)
    pause(page)
    assert trained > 300, f"only {trained} epochs in {seconds:.2f} s at max"


def test_reset_rerolls_and_restart_returns_to_the_same_start(
    page: Page, live_server: str
) -> None:
    """Two resets give two new starts (init_draw 1, 2 in the URL); 'same start' gives the
    current run's first weights again; a link with init_draw reproduces that start."""
    open_playground(page, live_server, "speed=null")
    title = page.locator("#reset-button").get_attribute("title") or ""
    assert title.startswith("Reset: new random weights")
    start0 = header(page)["weights_hash"]
    hashes = [start0]
    for draw in (1, 2):
        page.locator("#reset-button").click()
        page.wait_for_function(f"() => window.playground.state.init_draw === {draw}")
        page.wait_for_function(
            f"() => window.playground.frame.header.weights_hash !== '{hashes[-1]}'"
        )
        assert f"init_draw={draw}&" in page.url
        hashes.append(header(page)["weights_hash"])
    assert len(set(hashes)) == 3, hashes

    # Train a little, then restart from the same start: init_draw 2's weights, epoch 0.
    page.locator("#step-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 1")
    assert header(page)["weights_hash"] != hashes[-1]
    page.locator("#restart-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 0")
    assert header(page)["weights_hash"] == hashes[-1]
    assert session(page)["config"]["init_draw"] == 2

    # A shared link, opened in another tab, reproduces the start it names.
    shared = page.context.new_page()
    try:
        open_playground(shared, live_server, "init_draw=1&speed=null")
        assert header(shared)["weights_hash"] == hashes[1]
    finally:
        shared.evaluate("() => window.playground?.dispose()")
        shared.close()


def test_click_to_add_keeps_the_model_and_shows_the_point(page: Page, live_server: str) -> None:
    """After training, a click adds a visible training point: epoch and weights unchanged,
    n_train + 1, the test set as it was, the point drawn on the output."""
    open_playground(page, live_server, "speed=null&dataset=circle")
    page.locator("#step-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 1")
    for _ in range(4):
        page.locator("#step-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 5")
    page.wait_for_function("() => window.playground.points.train.length > 0")
    before = session(page)
    test_before = page.evaluate("() => window.playground.points.test")

    page.locator("#add-class").select_option("1")  # blue
    box = page.locator("#output-points").bounding_box()
    assert box is not None
    # (4.5, -4.5): three eighths in from the right, seven eighths down, an empty corner.
    page.mouse.click(box["x"] + box["width"] * 0.875, box["y"] + box["height"] * 0.875)
    page.wait_for_function(f"() => window.playground.session.n_train === {before['n_train'] + 1}")
    settled(page)
    after = session(page)
    assert after["epoch"] == before["epoch"] == 5
    assert after["weights_hash"] == before["weights_hash"]
    assert (after["n_train"], after["n_test"]) == (before["n_train"] + 1, before["n_test"])
    page.wait_for_function(
        f"() => window.playground.points.train.length === {before['n_train'] + 1}"
    )
    x1, x2, label = page.evaluate("() => window.playground.points.train.at(-1)")
    assert (x1, x2, label) == (pytest.approx(4.5, abs=0.1), pytest.approx(-4.5, abs=0.1), 1)
    assert page.evaluate("() => window.playground.points.test") == test_before
    # The frame after the edit still continues the run.
    assert header(page)["epoch"] == 5

    # The point is drawn: the points canvas is TFP blue at its centre.
    rgb = page.evaluate(
        """([x1, x2]) => {
            const c = document.getElementById('output-points');
            const px = Math.round((x1 + 6) / 12 * c.width);
            const py = Math.round((6 - x2) / 12 * c.height);
            return Array.from(c.getContext('2d').getImageData(px, py, 1, 1).data);
        }""",
        [x1, x2],
    )
    assert rgb[3] > 200 and rgb[2] > rgb[0] + 80, f"no blue point drawn at (4.5, -4.5): {rgb}"

    # Training goes on from epoch 5, on 1 more point.
    page.locator("#step-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 6")


def test_csv_upload_sends_points_only(page: Page, live_server: str, tmp_path: Path) -> None:
    """An upload replaces the data, even after a click set a test set: points only (test_points
    back to null), split by the train ratio."""
    rows = [(x, y, int(x * y > 0)) for x in (-3, -1, 1, 3) for y in (-3, -1, 1, 3)]
    csv = tmp_path / "points.csv"
    csv.write_text("x1,x2,label\n" + "".join(f"{x},{y},{label}\n" for x, y, label in rows))
    open_playground(page, live_server, "speed=null&train_ratio=0.5")
    page.wait_for_function("() => window.playground.points.train.length > 0")
    box = page.locator("#output-points").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => window.playground.session.config.test_points !== null")
    page.locator("#csv-upload").set_input_files(str(csv))
    page.wait_for_function(
        "() => window.playground.session.n_train + window.playground.session.n_test === 16"
    )
    config = session(page)["config"]
    assert config["test_points"] is None and len(config["points"]) == 16
    assert session(page)["n_train"] == 8


def test_python_panel_snippet_drives_the_page_session(
    page: Page, live_server: str, tmp_path: Path
) -> None:
    """The panel shows the live id; its REST snippet, run as a script, changes this session:
    the page shows the new learning rate, the stepped epochs and the pause."""
    open_playground(page, live_server)
    panel = page.locator("#python-panel")
    panel.locator("summary").click()
    page.wait_for_function("() => document.getElementById('python-panel').open")
    session_id = page.evaluate("() => window.playground.session.id")
    assert page.locator("#python-session-id").inner_text() == session_id
    rest = page.locator("#python-rest").inner_text()
    websocket = page.locator("#python-ws").inner_text()
    assert f'SESSION = "{session_id}"' in rest and f'BASE = "{live_server}"' in rest
    assert f'URL = "{live_server.replace("http", "ws")}/ws/sessions/{session_id}"' in websocket

    # Copy puts both snippets on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.locator("#copy-python").click()
    page.wait_for_function("() => document.querySelector('.copy-status').textContent === 'Copied'")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith(rest.strip().splitlines()[0]) and "websockets.connect" in copied

    # The page is playing when the script runs; the script sets lr 0.1, steps 20 and pauses.
    page.locator("#play-button").click()
    page.wait_for_function("() => window.playground.session.status === 'running'")
    script = tmp_path / "drive.py"
    script.write_text(rest)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("epoch ")
    page.wait_for_function("() => window.playground.frame.header.status === 'paused'")
    assert page.locator("#play-button").get_attribute("aria-pressed") == "false"
    # The poll of the open panel brings the script's learning rate into the controls.
    page.wait_for_function(
        "() => document.getElementById('learning-rate').value === '0.1'", timeout=10_000
    )
    assert page.evaluate("() => window.playground.state.learning_rate") == 0.1
    assert "learning_rate=0.1&" in page.url
    epoch = session(page)["epoch"]
    page.wait_for_function(f"() => window.playground.frame.header.epoch === {epoch}")
    assert epoch_counter(page) == epoch

    # The websocket part plays, reads 10 frames (printing their epochs) and pauses again.
    script.write_text(websocket)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    printed = [int(line.split()[1]) for line in lines if line.startswith("epoch")]
    assert len(printed) == 10 and printed[-1] > epoch
    page.wait_for_function(
        f"() => window.playground.frame.header.epoch >= {printed[-1]}"
        " && window.playground.frame.header.status === 'paused'"
    )

    # A reload reopens the same session (issue 9: the owner token in localStorage), and the
    # panel and the snippets still name it.
    page.reload()
    page.wait_for_function("() => window.playground && window.playground.frame")
    again = page.evaluate("() => window.playground.session.id")
    assert again == session_id
    assert page.locator("#python-session-id").inner_text() == again
    assert f'SESSION = "{again}"' in (page.locator("#python-rest").text_content() or "")
