"""The page's "Export code" (issue 11), in Debian's Chromium.

Gold: the server's own script for the same paused session (GET /api/sessions/{id}/code with
the page's owner token): the preview shows exactly that text, highlighted by highlight.js
(Python keyword spans), the download is that file under the server's file name, Copy puts it
on the clipboard, and picking another framework asks the server for that framework.
"""

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_export_code_previews_copies_and_downloads_the_servers_script(
    page: Page, live_server: str, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    # The first page of a test run waits for the shared server's worker process (~18 s at a
    # load of 8 on 2 cores): a longer first wait than the default 15 s, then the defaults.
    page.goto(f"{live_server}/")
    page.wait_for_function("() => window.playground && window.playground.frame", timeout=45_000)
    session = page.evaluate("() => window.playground.session")
    token = page.evaluate("() => localStorage.getItem('nn-playground.owner')") or ""
    stepped = httpx.post(f"{live_server}/api/sessions/{session['id']}/commands",
                         json={"type": "step", "n": 3}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert stepped.status_code == 200, stepped.text
    page.wait_for_function("() => window.playground.session.epoch === 3")
    gold = httpx.get(f"{live_server}/api/sessions/{session['id']}/code",
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert gold.status_code == 200, gold.text

    page.locator("#code-export").click()
    page.wait_for_function(
        "() => document.getElementById('code-preview').textContent.length > 1000")
    assert page.locator("#code-preview").text_content() == gold.text
    assert page.locator("#code-preview .hljs-keyword").count() > 10  # highlighted
    assert "lands on the playground's weights" in page.locator("#code-status").inner_text()

    with page.expect_download() as download:
        page.locator("#code-download").click()
    assert download.value.suggested_filename == gold.headers["content-disposition"].split('"')[1]
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.read_text() == gold.text

    page.locator("#code-copy").click()
    page.wait_for_function("() => document.getElementById('code-copy').textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == gold.text

    with page.expect_response(lambda r: "/code?framework=pytorch" in r.url):
        page.locator("#code-framework").select_option("pytorch")
