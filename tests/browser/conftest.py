"""One Chromium per test session (Debian's, driven by Playwright) and a fresh page per test."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Flags measured in /work/shared/RECIPES.md: headless without a GPU, sandbox or background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    """The Playwright driver, started once."""
    with sync_playwright() as playwright:
        yield playwright


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium; a missing binary is a failure that says how to install it."""
    if not CHROMIUM.exists():
        pytest.fail("install Debian's chromium: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """One Chromium for the test session."""
    browser = launch_chromium(playwright_instance)
    yield browser
    browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Console errors and uncaught exceptions of this test's page."""
    return []


def record_errors(page: Page, page_errors: list[str]) -> None:
    """Collect the page's console errors and uncaught exceptions into page_errors."""

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            page_errors.append(f"console: {message.text} at {message.location}")

    def exception(error: Error) -> None:
        page_errors.append(f"pageerror: {error}")

    page.on("console", console)
    page.on("pageerror", exception)


def owner_headers(page: Page) -> dict[str, str]:
    """The `Authorization` header of the page's owner token (issue 9: kept in localStorage), for
    REST calls a test makes on the page's own sessions."""
    token = page.evaluate("() => localStorage.getItem('nn-playground.owner')")
    return {"Authorization": f"Bearer {token}"} if token else {}


def rest_command(page: Page, base_url: str, session_id: str, command: dict[str, Any]) -> Any:
    """A session command over REST with the page's token; a long one answers 202 with a job
    (issue 9), followed here to its result: the session as a synchronous answer gives it."""
    headers = owner_headers(page)
    response = page.request.post(
        f"{base_url}/api/sessions/{session_id}/commands", data=command, headers=headers
    )
    assert response.ok, response.text()
    if response.status != 202:
        return response.json()
    job = f"{base_url}/api/jobs/{response.json()['job']['id']}"
    deadline = time.monotonic() + 60
    while page.request.get(job, headers=headers).json()["state"] == "running":
        assert time.monotonic() < deadline, "the job did not end within 60 s"
        page.wait_for_timeout(100)
    result = page.request.get(f"{job}/result", headers=headers)
    assert result.ok, result.text()
    return result.json()


@pytest.fixture
def page(browser: Browser, page_errors: list[str]) -> Iterator[Page]:
    """A new page in its own context (no shared storage between tests)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    record_errors(page, page_errors)
    yield page
    # Delete the test's session so it stops training on the shared server.
    page.evaluate("() => window.playground?.dispose()")
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
