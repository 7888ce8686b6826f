"""Lessons and instruments in Debian's Chromium: open each lesson, run its try-this steps.

Also (issue 8): watching steps train at the lesson's pace, every control a lesson names exists on
the page, and each instrument tab works when opened on its own on a fresh page.
"""

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from app.lessons import LESSONS

pytestmark = pytest.mark.browser

SLOW = 60_000  # ms: a 500-epoch step on a loaded 2-core machine


@pytest.fixture
def lessons_url(live_server: str) -> str:
    """The shared real server (app.main includes the lesson and instrument routers)."""
    return live_server


def open_lessons(page: Page, base_url: str) -> None:
    """Load the page, wait for it and the lessons, and open the lessons panel (closed at first)."""
    page.goto(f"{base_url}/")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.wait_for_selector(".lesson-button[data-lesson='optimizers']", state="attached")
    assert page.locator("#lessons-panel").is_hidden()
    page.locator("#lessons-toggle").click()
    page.wait_for_selector(".lesson-button[data-lesson='optimizers']")


def open_lesson(page: Page, lesson_id: str) -> None:
    page.locator(f".lesson-button[data-lesson='{lesson_id}']").click()
    page.wait_for_selector(f"#lesson-card[data-lesson='{lesson_id}']")


def run_step(page: Page, index: int) -> str:
    """Press the step's Try button and wait until it reports done; returns its report."""
    page.locator(f".try-this li[data-step='{index}'] .try-button").click()
    status = page.locator(f".try-this li[data-step='{index}'] .try-status")
    page.wait_for_function(
        f"() => ['done', 'error'].includes(document.querySelector("
        f"\".try-this li[data-step='{index}'] .try-status\")?.dataset.state)",
        timeout=SLOW,
    )
    assert status.get_attribute("data-state") == "done", status.inner_text()
    return status.inner_text()


def watch_step(page: Page, index: int) -> tuple[list[int], list[str]]:
    """Press a step's Try and read the epoch counter and the step's status every 100 ms until it
    reports done; returns the epochs and statuses seen (the last status is the final report)."""
    page.locator(f".try-this li[data-step='{index}'] .try-button").click()
    status = page.locator(f".try-this li[data-step='{index}'] .try-status")
    epochs: list[int] = []
    statuses: list[str] = []
    deadline = time.monotonic() + SLOW / 1000
    while time.monotonic() < deadline:
        # The state first: once it says done, the text read next is the final report.
        state = status.get_attribute("data-state")
        epochs.append(int(page.locator("#epoch-counter").inner_text().replace(",", "")))
        statuses.append(status.inner_text())
        if state in ("done", "error"):
            assert state == "done", statuses[-1]
            return epochs, statuses
        page.wait_for_timeout(100)
    raise AssertionError(f"step {index} did not finish: {statuses[-3:]}")


def frame_header(page: Page, epoch: int, same_weights: bool = True) -> dict[str, Any]:
    """The header of the frame the page drew, once it shows `epoch` (and, by default, the
    weights the last try-step's REST answer reported: never a stale frame of an earlier step)."""
    same = "window.playground.frame.header.weights_hash === window.playground.session.weights_hash"
    page.wait_for_function(
        f"() => window.playground.frame && window.playground.frame.header.epoch === {epoch}"
        " && window.playground.frame.header.status !== 'running'"
        + (f" && {same}" if same_weights else ""),
        timeout=SLOW,
    )
    header: dict[str, Any] = page.evaluate("() => window.playground.frame.header")
    return header


def shoot(page: Page, artifacts: Path, name: str) -> None:
    """The window as the learner sees it: the lesson panel beside the playground."""
    page.screenshot(path=str(artifacts / f"lesson-{name}.png"))


def test_lesson_menu_lists_the_eight_lessons(page: Page, lessons_url: str,
                                             page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    names = page.locator(".lesson-button").all_inner_texts()
    assert [n.split(".")[0] for n in names] == [str(i) for i in range(1, 9)]
    page.locator("#lessons-close").click()  # the panel closes ...
    assert not page.locator(".lesson-menu").is_visible()
    page.locator("#lessons-toggle").click()  # ... and comes back
    assert page.locator(".lesson-menu").is_visible()
    assert page_errors == []


def test_lesson_1_perceptron_settles_on_and_and_cycles_on_xor(
    page: Page, lessons_url: str, artifacts: Path, page_errors: list[str]
) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "perceptron")
    assert "converged" in run_step(page, 0)
    page.wait_for_selector("#perceptron-pane[data-done='true']", timeout=SLOW)
    assert "Converged" in page.locator(".perceptron-readout").inner_text()
    assert "no convergence in 50 passes" in run_step(page, 2)
    page.wait_for_selector("#perceptron-pane[data-dataset='xor-table'][data-done='true']",
                           timeout=SLOW)
    readout = page.locator(".perceptron-readout").inner_text()
    assert "cycles forever" in readout
    shoot(page, artifacts, "1-perceptron")
    assert page_errors == []


def test_lesson_2_hand_set_net_and_trained_mlp(
    page: Page, lessons_url: str, artifacts: Path, page_errors: list[str]
) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "xor-hidden-layer")
    rows = page.locator(".xor-demo tr").all_inner_texts()[1:]
    assert [row.split()[-1] for row in rows] == ["0", "1", "1", "0"]  # the slide's outputs
    run_step(page, 0)
    started = time.monotonic()
    epochs, statuses = watch_step(page, 1)
    elapsed = time.monotonic() - started
    assert statuses[-1].startswith("epoch 500")
    header = frame_header(page, 500)
    assert header["metrics"]["train_metric"] == 1.0  # all four rows of XOR right
    # At the lesson's pace (120 epochs/s) the 500 epochs take seconds, and the counter climbs
    # through them rather than jumping: the pace is an upper bound, so never faster than that.
    speed = LESSONS["xor-hidden-layer"].config["speed"]
    assert elapsed >= 0.9 * 500 / speed, elapsed
    climbing = sorted({e for e in epochs if 0 < e < 500})
    assert len(climbing) >= 10, epochs
    assert any(re.fullmatch(r"training at 120 epochs/s: epoch \d+ of 500", s) for s in statuses)
    shoot(page, artifacts, "2-xor-hidden-layer")
    assert page_errors == []


def test_lesson_3_backprop_phases_show_the_slides_numbers(
    page: Page, lessons_url: str, artifacts: Path, page_errors: list[str]
) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "backprop-by-hand")
    run_step(page, 0)
    page.wait_for_selector("#phase-title")
    h1 = page.locator(".diagram-value[data-unit='h1']").all_text_contents()
    assert h1 == ["net 0.3775", "out 0.59327"]  # the slide's forward pass, on the diagram
    for _ in range(5):
        page.locator("#phase-next").click()
    assert page.locator(".diagram-weight[data-weight='w1']").text_content() == "w1' 0.14978"
    assert page.locator("#phase-title").inner_text().startswith("Phase 6 of 6")
    text = page.locator("#trace-pane").inner_text()
    for printed in ("0.3775", "0.59327", "0.29837", "0.5113", "0.56137", "0.14978"):
        assert printed in text  # slide values that round the same at 5 decimals
    assert "passed" in page.locator("#grad-check").inner_text()
    shoot(page, artifacts, "3-backprop")
    assert page_errors == []


def test_lesson_4_output_units(page: Page, lessons_url: str, artifacts: Path,
                               page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "output-units")
    assert run_step(page, 0).startswith("epoch 100")
    assert frame_header(page, 100)["problem"] == "regression"
    run_step(page, 2)
    header = frame_header(page, 100)
    assert header["problem"] == "multiclass" and header["n_classes"] == 3
    shoot(page, artifacts, "4-output-units")
    assert page_errors == []


def test_lesson_5_overfitting(page: Page, lessons_url: str, artifacts: Path,
                              page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "overfitting")
    run_step(page, 0)
    metrics = frame_header(page, 400)["metrics"]
    assert metrics["test_loss"] > metrics["train_loss"] + 1.0  # memorised the noise
    run_step(page, 3)  # L2
    l2 = frame_header(page, 400)["metrics"]
    assert l2["test_loss"] - l2["train_loss"] < metrics["test_loss"] - metrics["train_loss"]
    shoot(page, artifacts, "5-overfitting")
    assert page_errors == []


def test_lesson_6_vanishing_gradients(page: Page, lessons_url: str, artifacts: Path,
                                      page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "vanishing-gradients")
    run_step(page, 0)
    norms = [layer["grad_norm"] for layer in frame_header(page, 1)["layers"]]
    assert norms[0] / norms[-1] < 0.1  # first hidden layer far below the output layer
    run_step(page, 1)
    relu = [layer["grad_norm"] for layer in frame_header(page, 1)["layers"]]
    assert relu[0] / relu[-1] > 10 * norms[0] / norms[-1]
    shoot(page, artifacts, "6-vanishing-gradients")
    assert page_errors == []


def test_lesson_7_zeros_keep_units_identical(page: Page, lessons_url: str, artifacts: Path,
                                             page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "initialization")
    run_step(page, 0)
    for layer in frame_header(page, 100)["layers"][:-1]:
        columns = list(zip(*layer["kernel"], strict=True))
        assert all(column == columns[0] for column in columns)  # every unit the same
    shoot(page, artifacts, "7-initialization")
    assert page_errors == []


def test_lesson_8_race(page: Page, lessons_url: str, artifacts: Path,
                       page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    open_lesson(page, "optimizers")
    run_step(page, 0)
    page.wait_for_selector("#race-pane[data-epoch='200']", timeout=SLOW)
    assert page.locator(".race-plot").count() == 5
    status = page.locator("#race-status").inner_text()
    for label in ("SGD", "Momentum", "AdaGrad", "RMSProp", "Adam"):
        assert label in status
    shoot(page, artifacts, "8-optimizers")
    assert page_errors == []


def test_trace_of_the_live_network(page: Page, lessons_url: str, artifacts: Path,
                                   page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-trace").click()
    page.locator("#trace-session").click()
    page.wait_for_selector(".trace-param")
    assert "passed" in page.locator("#grad-check").inner_text()
    assert page.locator(".trace-layer").count() >= 3  # two hidden layers and the output
    # Default net: 2 inputs -> 4 -> 2 -> 1, one link per kernel entry on the diagram.
    assert page.locator(".trace-link").count() == 2 * 4 + 4 * 2 + 2 * 1
    shoot(page, artifacts, "trace-live")
    assert page_errors == []


def test_time_travel_slider_and_fork(page: Page, lessons_url: str, artifacts: Path,
                                     page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    session_id = page.evaluate("() => window.playground.session.id")
    page.evaluate(
        "(id) => fetch(`/api/sessions/${id}/commands`, {method: 'POST', headers: "
        "{'Content-Type': 'application/json', Authorization: 'Bearer ' + "
        "localStorage.getItem('nn-playground.owner')}, "
        "body: JSON.stringify({type: 'step', n: 20})})",
        session_id,
    )
    frame_header(page, 20, same_weights=False)
    page.locator("#tab-timetravel").click()
    page.locator("#tt-record").click()
    page.wait_for_selector("#timetravel-pane[data-recorded='20'][data-epoch='20']", timeout=SLOW)
    page.locator("#tt-slider").fill("5")
    page.wait_for_selector("#timetravel-pane[data-epoch='5']")
    assert page.locator("#epoch-counter").inner_text().replace(",", "").lstrip("0") == "5"
    shoot(page, artifacts, "timetravel")
    page.locator("#tt-fork").click()
    page.wait_for_function(
        f"() => window.playground.session && window.playground.session.id !== '{session_id}'"
    )
    assert page.evaluate("() => window.playground.session.epoch") == 5
    fork_id = page.evaluate("() => window.playground.session.id")
    page.evaluate(
        "(id) => fetch(`/api/sessions/${id}/commands`, {method: 'POST', headers: "
        "{'Content-Type': 'application/json', Authorization: 'Bearer ' + "
        "localStorage.getItem('nn-playground.owner')}, "
        "body: JSON.stringify({type: 'step', n: 5})})",
        fork_id,
    )
    # The comparison chart follows the fork's curve past the fork point.
    page.wait_for_function(
        "() => Number(document.getElementById('timetravel-pane').dataset.forkEpochs) >= 10",
        timeout=SLOW,
    )
    assert page_errors == []


def test_every_lesson_opens(page: Page, lessons_url: str, page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    for lesson_id, lesson in LESSONS.items():
        open_lesson(page, lesson_id)
        assert page.locator(".try-this li").count() == len(lesson.try_this)
    assert page_errors == []


def test_race_with_any_subset_and_settings(page: Page, lessons_url: str,
                                           page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-race").click()
    for index in range(4):  # keep only Adam of the five ...
        page.locator(f"#racer-on-{index}").uncheck()
    page.locator("#racer-add-optimizer").select_option("adam")
    page.locator("#racer-add").click()  # ... and add a second Adam with other settings
    row = page.locator(".racer[data-racer='5']")
    row.locator(".racer-learning-rate").fill("0.1")
    row.locator(".racer-learning-rate").dispatch_event("change")
    row.locator(".racer-beta-1").fill("0.5")
    row.locator(".racer-beta-1").dispatch_event("change")
    page.locator("#race-epochs").fill("20")
    page.locator("#race-start").click()  # starts the race and runs its 20 epochs ...
    page.wait_for_selector("#race-pane[data-epoch='20']", timeout=SLOW)
    page.locator("#race-run").click()  # ... and "Run more" goes on for 20 more
    page.wait_for_selector("#race-pane[data-epoch='40']", timeout=SLOW)
    assert page.locator(".race-plot").count() == 2
    status = page.locator("#race-status").inner_text()
    assert "Adam" in status and "adam 2" in status
    race = page.evaluate(
        "() => fetch(`/api/races/${window.lessons.raceId}`).then((r) => r.json())"
    )
    assert [r["optimizer"]["optimizer"] for r in race["racers"]] == ["adam", "adam"]
    assert race["racers"][1]["optimizer"]["learning_rate"] == 0.1
    assert race["racers"][1]["optimizer"]["beta_1"] == 0.5
    assert page_errors == []


# ---- every control a lesson names exists ------------------------------------------------------

QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")
UNQUOTED_PRESS = re.compile(r"\b(?:press|click|tap|hit)\s+(?![\"“])(\S+)", re.IGNORECASE)


def named_controls(text: str) -> tuple[list[str], list[str]]:
    """The controls a text names in double quotes, and what it says to press without quotes."""
    quoted = [a or b for a, b in QUOTED.findall(text)]
    return quoted, UNQUOTED_PRESS.findall(text)


def normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def test_the_scanner_catches_the_missing_step_500_button() -> None:
    # Lesson 2's old text named a button the page never had, without quotes.
    assert named_controls("Press Step 500 epochs to train the 2-2-1 sigmoid network.") == (
        [], ["Step"])
    assert named_controls('Set "Seed" (in “More settings”) to 4 and press "Run".') == (
        ["Seed", "More settings", "Run"], [])
    assert normalized("Max-norm (blank: off)").startswith(normalized("Max-norm") + " ")


CONTROL_NAMES_JS = """() => {
    const names = [];
    const selector = 'button, select, input, summary, [role="tab"], [role="button"], a[href], '
        + 'label.file-button';
    for (const e of document.querySelectorAll(selector)) {
        names.push(e.textContent, e.getAttribute('aria-label'), e.title);
        for (const label of e.labels ?? []) names.push(label.textContent);
    }
    return names.filter((n) => n && n.trim());
}"""


def test_every_control_a_lesson_names_exists(page: Page, lessons_url: str,
                                             page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-trace").click()
    page.locator("#trace-lecture").click()  # the example's phase buttons
    page.wait_for_selector("#phase-next")
    controls = {normalized(name) for name in page.evaluate(CONTROL_NAMES_JS)}
    lessons = page.evaluate(
        "() => fetch('/api/lessons').then((r) => r.json()).then((list) => Promise.all("
        "list.map((l) => fetch(`/api/lessons/${l.id}`).then((r) => r.json()))))"
    )
    assert [lesson["id"] for lesson in lessons] == list(LESSONS)
    named = 0
    for lesson in lessons:
        texts = [lesson["text"]] + [s[k] for s in lesson["try_this"] for k in ("action", "expect")]
        for text in texts:
            quoted, unquoted = named_controls(text)
            assert unquoted == [], (lesson["id"], text)  # a control to press is always quoted
            for name in quoted:
                key = normalized(name)
                assert any(c == key or c.startswith(key + " ") for c in controls), (
                    lesson["id"], name)
                named += 1
    assert named >= 15  # the lessons do name controls: Seed, Regularization, Start race, ...
    assert page_errors == []


# ---- each instrument tab on its own, on a fresh page ------------------------------------------

def test_perceptron_tab_on_its_own_runs_and_has_its_controls(
    page: Page, lessons_url: str, page_errors: list[str]
) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-perceptron").click()  # no lesson first: it runs AND at once
    page.wait_for_selector("#perceptron-pane[data-dataset='and-table'][data-done='true']",
                           timeout=SLOW)
    assert "Converged" in page.locator(".perceptron-readout").inner_text()
    drawn = page.evaluate(
        "() => { const c = document.querySelector('.perceptron-plot');"
        " return c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data[3]; }"
    )
    assert drawn > 0  # the plane is painted
    page.locator("#perceptron-table").select_option("xor-table")
    page.locator("#perceptron-run").click()
    page.wait_for_selector("#perceptron-pane[data-dataset='xor-table'][data-done='true']",
                           timeout=SLOW)
    assert "cycles forever" in page.locator(".perceptron-readout").inner_text()
    assert page_errors == []


def test_race_tab_on_its_own_runs_on_start(page: Page, lessons_url: str,
                                           page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-race").click()
    assert '"Start race"' in page.locator("#race-status").inner_text()  # says what to do
    page.locator("#race-start").click()  # and Start runs the race, no other button needed
    page.wait_for_selector("#race-pane[data-epoch='100']", timeout=SLOW)
    assert page.locator(".race-plot").count() == 5
    assert "Epoch 100" in page.locator("#race-status").inner_text()
    assert page_errors == []


def test_trace_tab_on_its_own_traces_the_live_network(page: Page, lessons_url: str,
                                                      page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-trace").click()  # nothing else: the live network is traced at once
    page.wait_for_selector(".trace-param")
    assert "passed" in page.locator("#grad-check").inner_text()
    assert page.locator(".trace-intro").inner_text().startswith("Epoch 0,")
    assert page_errors == []


def test_time_travel_tab_on_its_own_after_play(page: Page, lessons_url: str,
                                               page_errors: list[str]) -> None:
    open_lessons(page, lessons_url)
    page.locator("#tab-timetravel").click()
    assert "Nothing trained yet" in page.locator("#tt-status").inner_text()
    page.locator("#play-button").click()  # the learner trains with the page's own controls
    page.wait_for_function("() => window.playground.frame.header.epoch >= 30", timeout=SLOW)
    page.locator("#play-button").click()
    page.wait_for_function(
        "() => window.playground.frame.header.status === 'paused'"
        " && window.playground.session.status === 'paused'"
    )
    live = page.evaluate("() => window.playground.frame.header.epoch")
    page.locator("#tt-record").click()
    page.wait_for_selector(f"#timetravel-pane[data-recorded='{live}']", timeout=SLOW)
    page.locator("#tt-slider").fill("5")
    page.wait_for_selector("#timetravel-pane[data-epoch='5']")
    assert page.locator("#epoch-counter").inner_text().replace(",", "").lstrip("0") == "5"
    page.locator("#tt-now").click()
    page.wait_for_function(
        f"() => document.getElementById('epoch-counter').textContent.replace(',', '') == {live}"
    )
    assert page_errors == []
