"""The page's Export/Import use the compact format (issue 10), in Debian's Chromium.

Gold: the session the page exported. The downloaded file is gzip (the compact format, checked by
its magic bytes and the server's own decoder), and uploading it gives a new session at the same
epoch with the same weights hash.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Page

from app.sessions.export_binary import import_compact
from tests.browser.test_page import open_playground, train_until

pytestmark = pytest.mark.browser


def test_export_downloads_the_compact_format_and_import_loads_it_back(
    page: Page, live_server: str, tmp_path: Path
) -> None:
    open_playground(page, live_server, "dataset=xor")
    train_until(page, 20)
    session = page.evaluate("() => window.playground.session")
    page.locator(".controls-more").evaluate("more => more.open = true")
    with page.expect_download() as download:
        page.locator("#export-model").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".nnpg.gz")
    body = saved.read_bytes()
    assert body[:2] == b"\x1f\x8b"
    exported = import_compact(body)
    assert exported.epoch == session["epoch"]

    page.locator("#import-model").set_input_files(str(saved))
    page.wait_for_function(
        "id => window.playground.session && window.playground.session.id !== id", arg=session["id"]
    )
    loaded = page.evaluate("() => window.playground.session")
    assert loaded["epoch"] == session["epoch"]
    assert loaded["weights_hash"] == session["weights_hash"]
    assert page.locator("#error").is_hidden()
