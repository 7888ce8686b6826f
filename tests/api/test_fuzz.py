"""Property-based fuzz of every REST operation from the OpenAPI schema: never a 5xx."""

import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import LiveServer

# One server for the whole module; schemathesis loads the schema from it at collection time.
_server = LiveServer(worker_processes=0).__enter__()
schema = schemathesis.openapi.from_url(f"{_server.url}/openapi.json")


def teardown_module() -> None:
    """Stop the module's server."""
    _server.__exit__(None, None, None)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: schemathesis.Case) -> None:
    response = case.call(base_url=_server.url, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:500]}"
