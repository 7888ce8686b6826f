"""Issue 8's page findings in Debian's Chromium: the instability warning, early stopping's reason,
a readable refused import, an error that clears once fixed, the dataset radios from the keyboard,
Step's shortcut and the transport's labels."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.test_page import epoch_counter, header, open_playground

pytestmark = pytest.mark.browser

# Where every browser test leaves its screenshots (gitignored); docs/screenshots has copies.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_too_high_learning_rate_shows_an_explained_warning_while_training_goes_on(
    page: Page, live_server: str
) -> None:
    """xor at learning rate 10 (seed 1, whose loss keeps jumping): within ~10 s a notice
    explains it and suggests a rate while the epoch keeps rising; taking the suggestion sets it
    and the notice goes."""
    open_playground(page, live_server, "dataset=xor&seed=1&learning_rate=10")
    page.locator("#play-button").click()
    warning = page.locator("#warning")
    warning.wait_for(state="visible", timeout=15_000)
    # The newest frame's warning and the banner, read at the same instant (numbers move).
    server_warning, text = page.evaluate(
        """() => [window.playground.link.lastHeader.warning,
                  document.getElementById('warning').innerText]"""
    )
    assert server_warning["message"] in text
    rate = server_warning["suggested_learning_rate"]
    assert 0 < rate < 10
    assert f"Use learning rate {rate}" in text
    assert page.locator("#diverged").is_hidden() and page.locator("#error").is_hidden()
    epoch = header(page)["epoch"]
    page.wait_for_function(f"() => window.playground.frame.header.epoch > {epoch + 30}")
    assert header(page)["status"] == "running"
    assert page.locator("#play-button").get_attribute("aria-pressed") == "true"
    page.screenshot(path=SCREENSHOTS / "page-instability-warning.png")

    page.locator("#use-suggested-rate").click()
    page.wait_for_function(f"() => window.playground.session.config.learning_rate === {rate}")
    assert page.locator("#learning-rate").input_value() == str(rate)
    warning.wait_for(state="hidden")


def test_early_stopping_shows_its_reason(page: Page, live_server: str) -> None:
    """Patience 2 on noisy data stops the run: the banner gives the server's reason."""
    open_playground(
        page, live_server, "dataset=spiral&noise=0.5&early_stopping_patience=2&speed=null"
    )
    page.locator("#play-button").click()
    page.wait_for_function("() => window.playground.frame.header.status === 'finished'")
    reason = header(page)["status_reason"]
    banner = page.locator("#diverged")
    banner.wait_for(state="visible")
    assert reason and reason in banner.inner_text()
    assert "early stopping" in reason.lower() or "patience" in reason.lower()
    assert "2 epochs" in reason


def test_a_refused_import_names_the_fields(page: Page, live_server: str, tmp_path: Path) -> None:
    """An export missing most fields: one line naming them, not "Field required" nine times."""
    bad = tmp_path / "half.json"
    bad.write_text(json.dumps({"format": "nn-playground-session", "version": 1, "epoch": "ten"}))
    open_playground(page, live_server)
    page.locator("#import-model").set_input_files(str(bad))
    error = page.locator("#error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert text.startswith("Import: half.json was refused: missing fields config, status, ")
    for field in ("weights", "optimizer", "rng", "history", "early_stopping"):
        assert field in text
    assert "Field required" not in text
    assert text.count("epoch: ") == 1, text


def test_a_refused_setting_clears_once_a_good_value_is_accepted(
    page: Page, live_server: str
) -> None:
    """Frames per second 0 is refused (banner); 20 is accepted and the banner goes at once."""
    open_playground(page, live_server)
    page.locator("#python-panel").evaluate("p => p.open = false")
    page.locator(".controls-more summary").click()
    frame_rate = page.locator("#frame-rate")
    frame_rate.fill("0")
    frame_rate.press("Enter")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "frame_rate" in error.inner_text()
    frame_rate.fill("20")
    frame_rate.press("Enter")
    page.wait_for_function("() => window.playground.session.config.frame_rate === 20")
    error.wait_for(state="hidden", timeout=2_000)  # not the 15 s timeout


def test_dataset_radios_take_one_tab_stop_and_arrow_keys(page: Page, live_server: str) -> None:
    """Like native radios: only the chosen dataset is tabbable, arrows move and choose."""
    open_playground(page, live_server, "speed=null")
    radios = page.locator("#datasets .dataset")
    names = radios.evaluate_all("bs => bs.map(b => b.dataset.name)")
    tabbable = radios.evaluate_all(
        "bs => bs.filter(b => b.tabIndex === 0).map(b => b.dataset.name)"
    )
    assert tabbable == ["circle"]
    page.locator('.dataset[data-name="circle"]').focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.playground.session.config.dataset === 'xor'")
    focused = page.evaluate("() => document.activeElement.dataset.name")
    assert focused == "xor"
    assert page.locator('.dataset[data-name="xor"]').get_attribute("aria-checked") == "true"
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => window.playground.state.dataset === 'circle'")
    page.keyboard.press("End")
    page.wait_for_function(f"() => window.playground.state.dataset === '{names[-1]}'")
    page.keyboard.press("ArrowDown")  # wraps to the first
    page.wait_for_function(f"() => window.playground.state.dataset === '{names[0]}'")
    page.keyboard.press("ArrowLeft")  # and back round
    page.wait_for_function(f"() => window.playground.state.dataset === '{names[-1]}'")
    # Tab leaves the group at once; Shift+Tab comes back to the chosen one.
    page.keyboard.press("Tab")
    assert page.evaluate("() => !document.activeElement.closest('#datasets')")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.dataset.name") == names[-1]


def test_step_has_a_shortcut_and_the_transport_is_labelled(page: Page, live_server: str) -> None:
    """S steps one epoch (not while typing); the transport's controls carry names and shortcuts."""
    open_playground(page, live_server, "speed=null")
    step = page.locator("#step-button")
    assert "(shortcut: S)" in (step.get_attribute("title") or "")
    assert step.get_attribute("aria-keyshortcuts") == "S"
    assert page.locator("#play-button").get_attribute("aria-keyshortcuts") == "Space"
    transport = page.locator(".transport")
    assert transport.get_attribute("role") == "group" and transport.get_attribute("aria-label")
    for button in ("#reset-button", "#restart-button", "#play-button", "#step-button"):
        assert page.locator(button).get_attribute("aria-label"), button
    assert page.locator("#speed").evaluate("s => s.labels[0].textContent") == "Speed (epochs/s)"

    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("s")
    page.wait_for_function("() => window.playground.frame.header.epoch === 1")
    page.keyboard.press("s")
    page.wait_for_function("() => window.playground.frame.header.epoch === 2")
    assert epoch_counter(page) == 2
    # Typed into an input, "s" is a letter, not a step.
    page.locator(".controls-more summary").click()
    page.locator("#seed").focus()
    page.keyboard.press("s")
    page.wait_for_timeout(400)
    assert header(page)["epoch"] == 2
