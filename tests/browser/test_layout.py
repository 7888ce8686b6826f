"""Layouts in Debian's Chromium (issue 8, points 4 and 5), checked on bounding boxes.

- 1400x900 with a lesson open: the lessons panel sits beside the playground, whose network and
  output heatmap stay whole on screen and uncovered, for every lesson; Escape closes the panel.
- 1024x768: the network and the output heatmap are both whole on the first screen.
- 390x844 on a touch screen, 4 hidden layers: nothing wider than the screen, no two controls
  overlapping, the output neuron whole, every control at least ~32 px where a finger taps, and
  taps drive the page.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from app.lessons import LESSONS
from tests.browser.conftest import record_errors

pytestmark = pytest.mark.browser

SLOW = 60_000  # ms: a paced lesson step on a loaded 2-core machine

Box = dict[str, float]
PageFactory = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser, page_errors: list[str]) -> Iterator[PageFactory]:
    """Pages of a given window size (and touch screen), closed with their sessions after."""
    contexts = []

    def make(width: int, height: int, touch: bool = False) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, has_touch=touch, is_mobile=touch
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        record_errors(page, page_errors)
        return page

    yield make
    for context in contexts:
        for page in context.pages:
            page.evaluate("() => window.playground?.dispose()")
        context.close()


def open_playground(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_function("() => window.playground && window.playground.frame")
    page.wait_for_selector(".lesson-button[data-lesson='optimizers']", state="attached")


def wait_for_thumbnails(page: Page) -> None:
    """Every dataset thumbnail drawn (they load after the first frame), before a screenshot."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('#datasets canvas')].every("
        "(c) => c.getContext('2d').getImageData(0, 0, 1, 1).data[3] > 0)"
    )


def box(page: Page, selector: str) -> Box:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not rendered"
    return {"x": found["x"], "y": found["y"], "width": found["width"], "height": found["height"]}


def inside(inner: Box, width: float, height: float) -> bool:
    """Whether a box lies whole within the window (0..width, 0..height)."""
    return (inner["x"] >= 0 and inner["y"] >= 0 and inner["x"] + inner["width"] <= width
            and inner["y"] + inner["height"] <= height)


def overlaps(a: Box, b: Box) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_overlap_and_inside_helpers() -> None:
    # The helpers the layout checks rest on, against boxes worked out by hand.
    a = {"x": 0.0, "y": 0.0, "width": 10.0, "height": 10.0}
    assert overlaps(a, {"x": 9.0, "y": 9.0, "width": 5.0, "height": 5.0})
    assert not overlaps(a, {"x": 10.0, "y": 0.0, "width": 5.0, "height": 5.0})  # touching
    assert inside(a, 10, 10) and not inside(a, 9.5, 10)


def wait_for_structure(page: Page, hidden_units: list[int]) -> None:
    """The diagram shows the given hidden layers (a lesson's preset reached the page)."""
    page.wait_for_function(
        """(units) => {
            const heads = [...document.querySelectorAll(
                '#network .layer-head[data-layer] .neuron-count')];
            return heads.length === units.length
              && heads.every((h, i) => parseInt(h.textContent, 10) === units[i]);
        }""",
        arg=hidden_units,
    )


def test_a_lesson_opens_beside_the_playground_at_1400x900(
    new_page: PageFactory, live_server: str, artifacts: Path, page_errors: list[str]
) -> None:
    page = new_page(1400, 900)
    open_playground(page, live_server)
    panel = page.locator("#lessons-panel")
    toggle = page.locator("#lessons-toggle")
    assert panel.is_hidden() and toggle.get_attribute("aria-expanded") == "false"  # closed at first
    toggle.focus()
    page.keyboard.press("Enter")  # the keyboard opens it ...
    assert panel.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    assert page.evaluate(
        "() => document.getElementById('lessons-panel').contains(document.activeElement)")
    for lesson_id, lesson in LESSONS.items():
        page.locator(f".lesson-button[data-lesson='{lesson_id}']").click()
        page.wait_for_selector(f"#lesson-card[data-lesson='{lesson_id}']")
        if "layers" in lesson.config:
            wait_for_structure(page, [layer["units"] for layer in lesson.config["layers"]])
        page.wait_for_timeout(300)  # the relayout after the panel opened (debounced 150 ms)
        drawer = box(page, "#lessons-panel")
        assert drawer["x"] + drawer["width"] == 1400 and drawer["height"] == 900
        for selector in ("#network", "#output-heatmap"):
            shown = box(page, selector)
            assert inside(shown, 1400, 900), (lesson_id, selector, shown)
            assert not overlaps(shown, drawer), (lesson_id, selector, shown, drawer)
        assert page.evaluate("() => scrollY") == 0  # without scrolling the page
        if lesson.kind != "session" and lesson_id != "optimizers":
            # Its instrument opens (the trace widens the panel); the next lesson must still
            # leave the playground its room.
            page.locator(".try-this li[data-step='0'] .try-button").click()
            page.wait_for_function(
                "() => document.querySelector(\".try-this li[data-step='0'] .try-status\")"
                "?.dataset.state === 'done'", timeout=SLOW,
            )
    page.locator(".lesson-button[data-lesson='overfitting']").click()
    page.wait_for_selector("#lesson-card[data-lesson='overfitting']")
    wait_for_structure(page, [8, 8, 8])
    page.locator(".try-this li[data-step='0'] .try-button").click()
    page.wait_for_function(
        "() => document.querySelector(\".try-this li[data-step='0'] .try-status\")"
        "?.dataset.state === 'done'", timeout=SLOW,
    )
    page.wait_for_function("() => window.playground.frame.header.epoch === 400", timeout=SLOW)
    wait_for_thumbnails(page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "lesson-beside-playground.png"))
    page.keyboard.press("Escape")  # ... and Escape closes it, focus back on the button
    assert panel.is_hidden() and toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("() => document.activeElement?.id") == "lessons-toggle"
    page.wait_for_timeout(300)
    assert box(page, "#network")["width"] > 600  # the playground has the window back
    assert page_errors == []


def test_network_and_output_share_the_first_screen_at_1024x768(
    new_page: PageFactory, live_server: str, artifacts: Path, page_errors: list[str]
) -> None:
    page = new_page(1024, 768)
    open_playground(page, live_server)
    network, output = box(page, "#network"), box(page, "#output-heatmap")
    assert inside(network, 1024, 768), network
    assert inside(output, 1024, 768), output
    assert output["x"] >= network["x"] + network["width"]  # side by side
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1024
    wait_for_thumbnails(page)
    page.screenshot(path=str(artifacts / "page-1024x768.png"))
    assert page_errors == []


# What a finger may tap on the page, and the boxes it must be given.
INTERACTIVE = (
    "button, select, input:not([type='hidden']), summary, a.text-button, label.file-button,"
    " [role='tab'], .node.feature, .bias"
)

BOXES_JS = """(selector) => {
    const visible = (e) => {
        const r = e.getBoundingClientRect();
        const style = getComputedStyle(e);
        if (r.width === 0 || r.height === 0 || style.visibility !== 'visible') return false;
        if (e.closest('.visually-hidden, [hidden]')) return false;
        // Inside a folded <details> (other than its summary) nothing is shown.
        const details = e.closest('details:not([open])');
        return !details || e.closest('summary')?.parentElement === details;
    };
    const elements = [...document.querySelectorAll(selector)].filter(visible);
    return elements.map((e, i) => {
        const r = e.getBoundingClientRect();
        const label = e.id ? document.querySelector(`label[for="${CSS.escape(e.id)}"]`) : null;
        const l = label && visible(label) ? label.getBoundingClientRect() : null;
        return {
            index: i,
            name: `${e.tagName.toLowerCase()}#${e.id}.${[...e.classList].join('.')} `
                + `"${(e.getAttribute('aria-label') ?? e.textContent ?? '').trim().slice(0, 30)}"`,
            box: {x: r.x, y: r.y + scrollY, width: r.width, height: r.height},
            label: l ? {x: l.x, y: l.y + scrollY, width: l.width, height: l.height} : null,
            check: e.type === 'checkbox' || e.type === 'radio',
            contains: elements.map((o) => o !== e && e.contains(o)),
            labelled: elements.map((o) => o === label),
        };
    });
}"""


def touch_size(element: dict[str, Any]) -> tuple[float, float]:
    """The size a finger gets: a checkbox's box joined with its label's (tapping either works)."""
    b, label = element["box"], element["label"]
    if element["check"] and label is not None:
        left, top = min(b["x"], label["x"]), min(b["y"], label["y"])
        right = max(b["x"] + b["width"], label["x"] + label["width"])
        bottom = max(b["y"] + b["height"], label["y"] + label["height"])
        return right - left, bottom - top
    return b["width"], b["height"]


def test_phone_layout_with_four_layers_by_touch(
    new_page: PageFactory, live_server: str, artifacts: Path, page_errors: list[str]
) -> None:
    page = new_page(390, 844, touch=True)
    open_playground(page, live_server)
    assert page.evaluate("() => matchMedia('(pointer: coarse)').matches")
    for count in (3, 4):
        page.locator("#add-layer").tap()  # taps, as a finger would
        page.wait_for_function(
            f"() => document.getElementById('layer-count').textContent.startsWith('{count} ')")
    page.locator("#network .layer-head[data-layer='3'] button[aria-label^='Add a neuron']").tap()
    wait_for_structure(page, [4, 2, 2, 3])
    page.wait_for_function("() => window.playground.frame.header.layers.length === 5")
    page.wait_for_timeout(300)

    width = page.evaluate("() => innerWidth")
    assert width == 390
    # No sideways scroll.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    elements: list[dict[str, Any]] = page.evaluate(BOXES_JS, INTERACTIVE)
    assert len(elements) > 60  # controls, datasets, 4 layer heads, features, biases
    for element in elements:
        b = element["box"]
        assert b["x"] >= 0 and b["x"] + b["width"] <= width, element["name"]
        if ".bias" in element["name"]:
            continue  # fine weight editing (24 px hit area on touch), as TFP's squares
        w, h = touch_size(element)
        assert w >= 31.5 and h >= 31.5, (element["name"], w, h)
    for a in elements:
        for b in elements[a["index"] + 1:]:
            related = a["contains"][b["index"]] or b["contains"][a["index"]]
            labelled = a["labelled"][b["index"]] or b["labelled"][a["index"]]
            if not related and not labelled:
                assert not overlaps(a["box"], b["box"]), (a["name"], b["name"])
    for selector in ("#network .output-node", "#output-heatmap", "#network"):
        shown = box(page, selector)
        assert shown["x"] >= 0 and shown["x"] + shown["width"] <= width, (selector, shown)
    page.evaluate("() => scrollTo(0, 0)")
    wait_for_thumbnails(page)
    page.screenshot(path=str(artifacts / "page-390x844.png"), full_page=True)

    # Taps drive the page: play and pause, a feature, the lessons panel as a bottom sheet.
    play = page.locator("#play-button")
    play.tap()
    page.wait_for_function("() => window.playground.frame.header.epoch > 0")
    play.tap()
    page.wait_for_function(
        "() => document.getElementById('play-button').getAttribute('aria-pressed') === 'false'")
    page.locator("#network .node.feature").nth(2).tap()  # x1² on
    page.wait_for_function("() => window.playground.state.features.length === 3")
    page.locator("#lessons-toggle").tap()
    sheet = box(page, "#lessons-panel")
    assert sheet["x"] == 0 and sheet["width"] == width and sheet["y"] + sheet["height"] == 844
    page.locator(".lesson-button[data-lesson='output-units']").tap()
    page.wait_for_selector("#lesson-card[data-lesson='output-units']")
    # A watching step scrolls the page so the output is whole above the sheet while it trains.
    page.locator(".try-this li[data-step='0'] .try-button").tap()
    page.wait_for_function(
        "() => /epoch [1-9]/.test(document.querySelector(\".try-this li[data-step='0']"
        " .try-status\").textContent)", timeout=SLOW,
    )
    output, sheet = box(page, "#output-heatmap"), box(page, "#lessons-panel")
    assert output["y"] >= 0 and output["y"] + output["height"] <= sheet["y"], (output, sheet)
    page.wait_for_function(
        "() => document.querySelector(\".try-this li[data-step='0'] .try-status\")"
        "?.dataset.state === 'done'", timeout=SLOW,
    )
    page.locator("#lessons-close").tap()
    assert page.locator("#lessons-panel").is_hidden()
    assert page_errors == []
