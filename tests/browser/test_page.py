"""The playground page in Debian's Chromium against a real server (issue 4's browser tests)."""

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Chance level of binary cross-entropy on balanced classes: a net that learned nothing scores ln 2.
CHANCE_BCE = math.log(2)
# TFP's colours (the page must use them for binary problems).
ORANGE = (0xF5, 0x93, 0x22)
BLUE = (0x08, 0x77, 0xBD)


def open_playground(page: Page, base_url: str, hash_: str = "") -> None:
    """Load the page (optionally with a config in the hash) and wait for its first drawn frame."""
    page.goto(f"{base_url}/#{hash_}" if hash_ else f"{base_url}/")
    page.wait_for_function("() => window.playground && window.playground.frame")


def header(page: Page) -> dict[str, Any]:
    """The JSON header of the last frame the page drew."""
    result: dict[str, Any] = page.evaluate("() => window.playground.frame.header")
    return result


def epoch_counter(page: Page) -> int:
    """The epoch the counter shows (000,123 -> 123)."""
    return int(page.locator("#epoch-counter").inner_text().replace(",", ""))


def train_until(page: Page, epoch: int) -> None:
    """Press play, wait for the drawn frame to reach `epoch`, pause and wait for the pause."""
    page.locator("#play-button").click()
    page.wait_for_function(f"() => window.playground.frame.header.epoch >= {epoch}")
    page.locator("#play-button").click()
    page.wait_for_function(
        "() => window.playground.session.status === 'paused'"
        " && window.playground.frame.header.status === 'paused'"
    )


def heatmap_rgb(page: Page, x1: float, x2: float) -> tuple[int, int, int]:
    """The output heatmap's colour at plane point (x1, x2) (grid over [-6, 6]², row 0 on top)."""
    rgb: list[int] = page.evaluate(
        """([x1, x2]) => {
            const canvas = document.getElementById('output-heatmap');
            const r = canvas.width;
            const col = Math.floor((x1 + 6) / 12 * r), row = Math.floor((6 - x2) / 12 * r);
            const d = canvas.getContext('2d').getImageData(col, row, 1, 1).data;
            return [d[0], d[1], d[2]];
        }""",
        [x1, x2],
    )
    return rgb[0], rgb[1], rgb[2]


def heatmap_pixels(page: Page) -> list[int]:
    """Every RGBA byte of the output heatmap canvas."""
    data: list[int] = page.evaluate(
        """() => {
            const c = document.getElementById('output-heatmap');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
        }"""
    )
    return data


RGB = tuple[int, ...]


def distance2(a: RGB, b: RGB) -> int:
    """Squared distance between two colours."""
    return sum((p - q) ** 2 for p, q in zip(a, b, strict=True))


def closer(rgb: RGB, a: RGB, b: RGB) -> bool:
    """Whether rgb is nearer to colour a than to colour b."""
    return distance2(rgb, a) < distance2(rgb, b)


def test_page_loads_without_console_errors(
    page: Page, live_server: str, page_errors: list[str], artifacts: Path
) -> None:
    """The default page draws a frame, builds its menus from the registry and logs no error."""
    open_playground(page, live_server)
    page.wait_for_function("() => window.playground.points.train.length > 0")
    registry = page.evaluate("() => fetch('/api/registry').then(r => r.json())")
    optimizers = page.locator("#optimizer option").evaluate_all("os => os.map(o => o.value)")
    assert optimizers == list(registry["optimizers"])
    thumbnails = page.locator("#datasets .dataset").count()
    assert thumbnails == len(registry["datasets"])
    assert epoch_counter(page) == 0
    page.wait_for_timeout(300)  # thumbnails and points finish drawing for the screenshot
    page.screenshot(path=artifacts / "page-initial.png", full_page=True)
    assert page_errors == []


def test_play_climbs_epochs_and_lowers_test_loss(
    page: Page, live_server: str, artifacts: Path
) -> None:
    """Circle, lr 0.1: epochs climb, test loss ends far below ln 2, at most a draw per frame."""
    open_playground(page, live_server, "dataset=circle&learning_rate=0.1&frame_rate=60")
    # Count animation frames from now on: the page may draw at most once in each.
    page.evaluate(
        """() => { window.ticks = 0; window.drawnBefore = window.playground.stats.drawn;
                   const tick = () => { window.ticks++; requestAnimationFrame(tick); };
                   requestAnimationFrame(tick); }"""
    )
    seen: list[int] = []
    page.locator("#play-button").click()
    for target in (5, 40, 150):
        page.wait_for_function(f"() => window.playground.frame.header.epoch >= {target}")
        seen.append(epoch_counter(page))
    page.locator("#play-button").click()
    assert seen == sorted(seen) and seen[0] >= 5 and seen[-1] >= 150
    drawn, ticks = page.evaluate(
        "() => [window.playground.stats.drawn - window.drawnBefore, window.ticks]"
    )
    assert 0 < drawn <= ticks + 1
    test_loss = header(page)["metrics"]["test_loss"]
    assert test_loss < CHANCE_BCE / 2, f"test loss {test_loss} vs chance {CHANCE_BCE}"
    shown = float(page.locator("#test-loss").inner_text())
    assert shown == pytest.approx(test_loss, abs=0.06)  # the number lags at most one frame
    page.screenshot(path=artifacts / "page-circle-trained.png", full_page=True)


def test_output_heatmap_shows_the_learned_xor(
    page: Page, live_server: str, artifacts: Path
) -> None:
    """The heatmap is not blank, changes while training, and ends blue where x1·x2 > 0 (XOR)."""
    open_playground(page, live_server, "dataset=xor&learning_rate=0.1&features=x1,x2,x1x2")
    before = heatmap_pixels(page)
    assert all(alpha == 255 for alpha in before[3::4]), "heatmap has transparent (undrawn) pixels"
    train_until(page, 150)
    after = heatmap_pixels(page)
    assert after != before
    assert len({tuple(after[i : i + 3]) for i in range(0, len(after), 4)}) > 10
    for x1, x2 in [(3, 3), (-3, -3)]:
        assert closer(heatmap_rgb(page, x1, x2), BLUE, ORANGE), (x1, x2)
    for x1, x2 in [(3, -3), (-3, 3)]:
        assert closer(heatmap_rgb(page, x1, x2), ORANGE, BLUE), (x1, x2)
    page.screenshot(path=artifacts / "page-xor-trained.png", full_page=True)
    # Discretized, every cell is one of TFP's two class colours.
    page.locator("#discretize").check()
    page.wait_for_function("() => window.playground.state.discretize")
    page.wait_for_timeout(100)
    discrete = heatmap_pixels(page)
    assert {tuple(discrete[i : i + 3]) for i in range(0, len(discrete), 4)} == {ORANGE, BLUE}


def test_learning_rate_change_during_training_keeps_the_weights(
    page: Page, live_server: str
) -> None:
    """Changing the learning rate keeps the weights (same hash) and the epoch; training goes on."""
    open_playground(page, live_server)
    train_until(page, 5)
    before = header(page)
    page.locator("#learning-rate").select_option("0.3")
    page.wait_for_function(
        "() => window.playground.pendingSets.size === 0"
        " && window.playground.session.config.learning_rate === 0.3"
    )
    session = page.evaluate("() => window.playground.session")
    assert session["weights_hash"] == before["weights_hash"]
    assert session["epoch"] == before["epoch"]
    page.locator("#play-button").click()
    page.wait_for_function(f"() => window.playground.frame.header.epoch > {before['epoch'] + 3}")
    page.locator("#play-button").click()
    assert header(page)["weights_hash"] != before["weights_hash"]


def test_editing_a_weight_changes_the_output(page: Page, live_server: str) -> None:
    """Click a weight into the output unit, type 8: the frame carries 8 and the output moves."""
    open_playground(page, live_server)
    before = header(page)
    page.evaluate("() => { window.outputBefore = Array.from(window.playground.frame.output); }")
    pixels_before = heatmap_pixels(page)
    output_layer = len(before["layers"]) - 1
    # From the second unit of the last hidden layer: a curve (a level link has no height to hover).
    link = page.locator(f'path.link-hit[data-layer="{output_layer}"][data-i="1"]')
    link.hover()
    assert "Weight" in page.locator("#weight-tooltip").inner_text()
    link.click()
    editing = page.evaluate("() => window.playground.views.network.editing")
    assert editing["layer"] == output_layer and editing["param"] == "kernel"
    page.locator("#weight-editor-input").fill("8")
    page.locator("#weight-editor-input").press("Enter")
    page.wait_for_function(
        f"() => window.playground.frame.header.weights_hash !== '{before['weights_hash']}'"
    )
    i, j = editing["index"]
    after = header(page)
    assert after["layers"][output_layer]["kernel"][i][j] == 8.0
    assert after["epoch"] == before["epoch"]
    moved = page.evaluate(
        """() => Math.max(...window.playground.frame.output.map(
            (v, k) => Math.abs(v - window.outputBefore[k])))"""
    )
    assert moved > 0.05
    assert heatmap_pixels(page) != pixels_before


def test_adding_a_layer_redraws_the_network(page: Page, live_server: str, artifacts: Path) -> None:
    """+ layer: a third hidden layer of 2 neurons appears, with 2·4 + 4·2 + 2·2 + 2·1 links."""
    open_playground(page, live_server)
    assert page.locator(".network .layer-head[data-layer]").count() == 2
    page.locator("#add-layer").click()
    page.wait_for_function("() => window.playground.frame.header.layers.length === 4")
    assert page.locator(".network .layer-head[data-layer]").count() == 3
    assert page.locator(".network .node:not(.feature):not(.output-node)").count() == 4 + 2 + 2
    assert page.locator("path.link").count() == 2 * 4 + 4 * 2 + 2 * 2 + 2 * 1
    assert page.locator("path.link-hit").count() == 2 * 4 + 4 * 2 + 2 * 2 + 2 * 1
    assert page.locator("#layer-count").inner_text() == "3 hidden layers"
    page.screenshot(path=artifacts / "page-three-layers.png", full_page=True)


def test_multiclass_dataset_shows_its_classes(
    page: Page, live_server: str, artifacts: Path
) -> None:
    """blobs-3: three output units, a 3-class legend and confusion matrix, three colour regions."""
    open_playground(page, live_server, "learning_rate=0.1")
    page.locator('.dataset[data-name="blobs-3"]').click()
    page.wait_for_function("() => window.playground.frame.header.problem === 'multiclass'")
    assert page.locator(".network .output-node").count() == 3
    assert page.locator("#legend .legend-class").count() == 3
    train_until(page, 60)
    assert page.locator("#confusion tr").count() == 1 + 3
    palette: list[str] = page.evaluate(
        "() => import('/static/js/colors.js').then(m => m.CLASS_COLORS.slice(0, 3))"
    )
    hues = [tuple(int(c[k : k + 2], 16) for k in (1, 3, 5)) for c in palette]
    pixels = heatmap_pixels(page)
    winners = set()
    for i in range(0, len(pixels), 4 * 37):  # a sample of cells across the plane
        rgb = tuple(pixels[i : i + 3])
        if distance2(rgb, (0xE8, 0xEA, 0xEB)) < 400:  # undecided grey
            continue
        winners.add(min(range(3), key=lambda k: distance2(rgb, hues[k])))
    assert winners == {0, 1, 2}
    page.screenshot(path=artifacts / "page-blobs-3.png", full_page=True)


def test_reloading_the_url_restores_the_configuration(page: Page, live_server: str) -> None:
    """Settings made in the page survive a reload: the controls and the server's config agree."""
    open_playground(page, live_server)
    page.locator('.dataset[data-name="xor"]').click()
    page.locator("#learning-rate").select_option("0.1")
    page.locator("#add-layer").click()
    page.locator('.node.feature[data-feature="x1x2"]').click()
    page.locator("#show-test").check()
    page.locator(".controls-more summary").click()
    page.locator("#seed").fill("7")
    page.locator("#seed").press("Enter")
    page.wait_for_function("() => window.playground.pendingSets.size === 0")
    page.reload()
    page.wait_for_function("() => window.playground && window.playground.frame")
    config = page.evaluate("() => window.playground.session.config")
    assert config["dataset"] == "xor"
    assert config["learning_rate"] == 0.1
    assert config["seed"] == 7
    assert config["features"] == ["x1", "x2", "x1x2"]
    assert [layer["units"] for layer in config["layers"]] == [4, 2, 2]
    assert page.locator("#learning-rate").input_value() == "0.1"
    assert page.locator("#show-test").is_checked()
    assert page.locator('.dataset[data-name="xor"]').get_attribute("aria-checked") == "true"
    x1x2 = page.locator('.node.feature[data-feature="x1x2"]')
    assert x1x2.get_attribute("aria-pressed") == "true"


def test_diverging_learning_rate_shows_the_reason(
    page: Page, live_server: str, artifacts: Path
) -> None:
    """Learning rate 10 on a ReLU regression net blows up: the page says so, with the reason."""
    open_playground(
        page, live_server, "dataset=reg-plane&learning_rate=10&layers=8:relu:0:0,8:relu:0:0"
    )
    page.locator("#play-button").click()
    banner = page.locator("#diverged")
    banner.wait_for(state="visible")
    text = banner.inner_text()
    reason = page.evaluate("() => window.playground.frame.header.status_reason")
    assert "diverged" in text.lower() and reason and reason in text
    assert page.locator("#play-button").get_attribute("aria-pressed") == "false"
    page.screenshot(path=artifacts / "page-diverged.png", full_page=True)


def test_keyboard_space_toggles_play_and_every_control_is_labelled(
    page: Page, live_server: str
) -> None:
    """Space plays and pauses, Enter edits a focused weight, every control has a name."""
    open_playground(page, live_server)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Space")
    page.wait_for_function("() => window.playground.session.status === 'running'")
    page.keyboard.press("Space")
    page.wait_for_function("() => window.playground.session.status === 'paused'")
    # A weight from the keyboard: focus its link, Enter opens the editor, type, Enter sets it.
    weight = page.locator('path.link-hit[data-layer="0"][data-i="0"][data-j="0"]')
    assert weight.get_attribute("aria-label") == "Weight from x1 to layer 1 neuron 1"
    weight.focus()
    page.keyboard.press("Enter")
    page.locator("#weight-editor-input").wait_for(state="visible")
    page.keyboard.type("-2.5")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => window.playground.frame.header.layers[0].kernel[0][0] === -2.5"
    )
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button, [role="button"]')]
            .filter(el => el.type !== 'file')
            .filter(el => !(el.labels?.length || el.getAttribute('aria-label')
                            || el.textContent.trim() || el.title))
            .map(el => el.outerHTML)"""
    )
    assert unlabelled == []


def test_csv_upload_click_to_add_export_import_and_regenerate(
    page: Page, live_server: str, tmp_path: Path
) -> None:
    """User data in and out: a 12-point CSV, a clicked 13th point, a model round trip, new data."""
    rows = [(1, 1, 1), (-1, -1, 1), (1, -1, 0), (-1, 1, 0)]
    rows = [(x * k, y * k, label) for k in (1, 2, 3) for x, y, label in rows]
    csv = tmp_path / "points.csv"
    csv.write_text("x1,x2,label\n" + "".join(f"{x},{y},{label}\n" for x, y, label in rows))
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,label\n1,2,1\n3,oops,0\n")
    open_playground(page, live_server)
    page.locator("#csv-upload").set_input_files(str(bad))
    page.locator("#error").wait_for(state="visible")
    assert "line 3" in page.locator("#error").inner_text()
    page.locator("#csv-upload").set_input_files(str(csv))
    count = "window.playground.points.train.length + window.playground.points.test.length"
    page.wait_for_function(f"() => window.playground.state.points && {count} === 12")

    page.locator("#add-class").select_option("1")
    box = page.locator("#output-points").bounding_box()
    assert box is not None
    # A quarter in from the right and the top of [-6, 6]² is the point (3, 3).
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
    page.wait_for_function(f"() => {count} === 13")
    x1, x2, label = page.evaluate("() => window.playground.state.points.at(-1)")
    assert (x1, x2, label) == (pytest.approx(3, abs=0.1), pytest.approx(3, abs=0.1), 1)
    data_csv = page.evaluate(
        "() => fetch(document.getElementById('csv-download').href, {headers: {Authorization:"
        " 'Bearer ' + localStorage.getItem('nn-playground.owner')}}).then(r => r.text())"
    )
    assert len(data_csv.strip().splitlines()) == 1 + 13

    page.locator("#step-button").click()
    page.locator("#step-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 2")
    trained = header(page)["weights_hash"]
    page.locator(".controls-more summary").click()
    with page.expect_download() as download:
        page.locator("#export-model").click()
    exported = download.value.path()
    page.locator("#reset-button").click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 0")
    page.locator("#import-model").set_input_files(str(exported))
    page.wait_for_function("() => window.playground.frame.header.epoch === 2")
    assert header(page)["weights_hash"] == trained

    page.locator('.dataset[data-name="xor"]').click()
    page.wait_for_function("() => window.playground.frame.header.epoch === 0")
    page.locator("#regenerate").click()
    page.wait_for_function("() => window.playground.state.seed === 1")
    assert "seed=1&" in page.url


def test_loss_history_stays_bounded_and_evenly_spaced(page: Page, live_server: str) -> None:
    """100,000 epochs into a 1,000-point history: bounded, evenly spaced, first epoch kept."""
    page.goto(f"{live_server}/health")  # any page of the server: modules load same-origin
    kept = page.evaluate(
        """() => import('/static/js/history.js').then(({ SeriesHistory }) => {
            const h = new SeriesHistory(2, 1000);
            for (let e = 1; e <= 100000; e++) h.append(e, [1 / e, 2 / e]);
            return { epochs: h.columns[0], train: h.columns[1], stride: h.stride };
        })"""
    )
    epochs = kept["epochs"]
    assert len(epochs) < 1000
    assert epochs[0] == 1
    gaps = {b - a for a, b in itertools.pairwise(epochs)}
    assert gaps == {kept["stride"]}
    assert 100000 - epochs[-1] < kept["stride"]
    assert kept["train"][5] == 1 / epochs[5]  # values stay with their epochs


def test_state_round_trips_through_the_url(page: Page, live_server: str) -> None:
    """Every knob written to the hash reads back identically (layers and user points too)."""
    page.goto(f"{live_server}/health")  # any page of the server: modules load same-origin
    same = page.evaluate(
        """() => import('/static/js/state.js').then((m) => {
            const state = m.defaultState();
            Object.assign(state, {
                dataset: 'spiral', seed: 42, learning_rate: 0.003, features: ['x1', 'sin_x2'],
                layers: [{units: 8, activation: 'relu', dropout: 0.25, batch_norm: true},
                         {units: 3, activation: 'elu', dropout: 0, batch_norm: false}],
                points: [[1.25, -2.5, 1], [0, 3.75, 0]], max_norm: 2, momentum: null,
                early_stopping_patience: 5, augmentation: true, show_test: true,
            });
            const back = m.parseState('#' + m.serializeState(state), m.defaultState());
            return JSON.stringify(back) === JSON.stringify(state);
        })"""
    )
    assert same
