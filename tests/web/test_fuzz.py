"""The JSON API fuzzed from its own OpenAPI description (schemathesis): never a 5xx.

A live portal of its own (uvicorn on 127.0.0.1:0) is fuzzed over HTTP with an admin's
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
    return schemathesis.openapi.from_url(f"{fuzz_live.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path="/api/auth/logout").parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_with_a_server_error(case, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers={"Authorization": f"Bearer {admin_token}"}, timeout=20)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    )


def test_openapi_lists_the_api(fuzz_live: LiveServer) -> None:
    doc = httpx.get(f"{fuzz_live.url}/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/api/recordings",
        "/api/recordings/{recording_id}/audio",
        "/api/cases",
        "/api/requests",
        "/api/audit",
        "/api/numbers/{number}/schedule",
    } <= paths
    assert not any(p.startswith("/cases") or p == "/" for p in paths)
