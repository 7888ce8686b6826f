"""/docs works with no network: Swagger UI comes from static/vendor, nothing from elsewhere."""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Route

pytestmark = pytest.mark.browser


def test_api_docs_render_with_every_outside_request_refused(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    own_host = urlparse(live_server).netloc
    outside: list[str] = []

    def offline(route: Route) -> None:
        # What the browser would need from the internet fails, as on a machine with no network.
        if urlparse(route.request.url).netloc in (own_host, ""):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    operations = page.locator(".swagger-ui .opblock").count()
    assert operations >= 20, f"only {operations} operations rendered"
    assert page.title() == "nn-playground API"
    assert page.locator(".swagger-ui .title").first.inner_text().startswith("nn-playground")
    # Expanding one operation shows its parameters and responses (the UI is live, not a shell).
    page.locator(".opblock-summary", has_text="/api/sessions/{session_id}").first.click()
    page.wait_for_selector(".swagger-ui .responses-wrapper")
    assert outside == [], f"/docs asked the network for {outside}"
    assert page_errors == []


def test_redoc_is_not_served_half_broken(page: Page, live_server: str) -> None:
    response = page.request.get(f"{live_server}/redoc")
    assert response.status == 404
