from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from siprec_recorder.services.settings import WebSettings
from siprec_recorder.web.app import create_app

from .fixtures import PASSWORD, World, build_world


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters in tests (production keeps argon2-cffi's defaults)."""
    from argon2 import PasswordHasher

    from siprec_recorder.services import security

    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


class Clock:
    """A settable clock for the portal (expiry, lockout)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = await build_world(tmp_path)
    yield w
    await w.db.close()


@pytest.fixture
def settings(clock: Clock) -> WebSettings:
    return WebSettings(
        secure_cookies=True,
        lockout_threshold=3,
        source_threshold=6,
        lockout_minutes=10,
        login_floor_seconds=0.1,
        clock=clock,
    )


@pytest.fixture
def app(world: World, settings: WebSettings, policy):  # type: ignore[no-untyped-def]
    return create_app(world.db, world.layout, settings, policy)


@pytest.fixture
def policy(world: World):  # type: ignore[no-untyped-def]
    from siprec_recorder.policy.service import PolicyService

    return PolicyService(world.db)


@pytest.fixture
def client_factory(app):  # type: ignore[no-untyped-def]
    clients: list[httpx.AsyncClient] = []

    def make(source: str = "127.0.0.1") -> httpx.AsyncClient:
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(source, 40000)),
            base_url="https://testserver",
            follow_redirects=False,
        )
        clients.append(c)
        return c

    yield make


async def login(client: httpx.AsyncClient, who: str, password: str = PASSWORD) -> dict:
    r = await client.post("/api/auth/login", json={"login": who, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    if body.get("csrf_token"):
        client.headers["X-CSRF-Token"] = body["csrf_token"]
    return body


@pytest.fixture
async def as_user(client_factory):  # type: ignore[no-untyped-def]
    async def make(who: str) -> httpx.AsyncClient:
        c = client_factory()
        await login(c, who)
        return c

    return make


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A private OpenLDAP server on a free loopback port for the whole session."""
    import shutil

    from .slapd import SLAPD, start_slapd

    if not shutil.which(SLAPD) or not shutil.which("ldapadd"):
        pytest.skip("slapd / ldap-utils are not installed (scripts/run-tests installs them)")
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()
