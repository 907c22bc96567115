"""The JSON API fuzzed from its own OpenAPI description (schemathesis), every check.

A real ``serve`` of its own (portal on 127.0.0.1:0) is fuzzed over HTTP with an admin's
bearer token, so the generated requests reach the handlers instead of stopping at 401.
Logging out is left out (it would end the token's session for the remaining cases).
Bounded: a few examples per operation, well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .fixtures import PASSWORD
from .live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("fuzz")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_token(fuzz_live: LiveServer) -> str:
    r = httpx.post(f"{fuzz_live.url}/api/auth/login", json={"login": "alice", "password": PASSWORD})
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def api_schema(fuzz_live: LiveServer):  # type: ignore[no-untyped-def]
    from schemathesis.config import SchemathesisConfig

    # Schema-valid is not rule-valid: a wrong current password, a weak new one or since
    # after until are refused with 400/422 and a message, which is the documented answer.
    config = SchemathesisConfig.from_str(
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]\n'
    )
    return schemathesis.openapi.from_url(f"{fuzz_live.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/api/auth/logout").parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_passes_every_check(case, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    # No ``checks``: every check schemathesis has (status codes, content types, headers and
    # bodies against the schema, negative data rejected, positive data accepted, ...).
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, timeout=20)


def test_openapi_lists_the_api(fuzz_live: LiveServer) -> None:
    doc = httpx.get(f"{fuzz_live.url}/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/api/recordings",
        "/api/recordings/{recording_id}/audio",
        "/api/cases",
        "/api/requests",
        "/api/audit",
        "/api/numbers",
        "/api/numbers/{number}",
        "/api/numbers/{number}/schedule",
        "/api/numbers/import",
        "/api/templates",
        "/api/users",
        "/api/labels",
        "/api/requests/{request_id}/approve",
    } <= paths
    assert not any(p.startswith("/cases") or p == "/" for p in paths)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"]["in"] == "cookie"
    assert doc["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    assert doc["paths"]["/api/auth/login"]["post"]["security"] == []
    # no docs page that loads scripts from elsewhere
    assert httpx.get(f"{fuzz_live.url}/api/docs").status_code == 404
