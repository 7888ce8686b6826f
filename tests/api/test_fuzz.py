"""Property-based fuzz of every REST operation from the OpenAPI schema: never a 5xx."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.main import create_app
from tests.conftest import LiveServer, make_settings

# The schema comes from the app itself; the server it is sent to starts with the module's tests.
schema = schemathesis.openapi.from_dict(create_app(make_settings()).openapi())


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[str]:
    """A real server (one worker thread) for this module only, so fuzzed sessions die with it."""
    with LiveServer(worker_processes=0) as server:
        yield server.url


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: schemathesis.Case[Any], fuzz_server: str) -> None:
    response = case.call(base_url=fuzz_server, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:500]}"
