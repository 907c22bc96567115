"""Property tests against a real ``serve``: random Range headers at the audio endpoint and
random dates at the search and audit endpoints (hypothesis).

Whatever arrives: no 5xx; every audio answer is in the audit trail with the bytes it
carried; nobody gets the whole file from the player's endpoint; dates outside the kept
range are a 422 with a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from siprec_recorder.storage.models import LedgerEntry

from .fixtures import PASSWORD
from .live import LiveServer

pytestmark = pytest.mark.slow
WHO = ("alice", "bob", "audrey")


@pytest.fixture(scope="module")
def prop_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("props")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clients(prop_live: LiveServer) -> Iterator[dict[str, httpx.Client]]:
    out = {}
    for who in WHO:
        r = httpx.post(f"{prop_live.url}/api/auth/login", json={"login": who, "password": PASSWORD})
        r.raise_for_status()
        out[who] = httpx.Client(
            base_url=prop_live.url,
            headers={"Authorization": f"Bearer {r.json()['token']}"},
            timeout=20,
        )
    yield out
    for c in out.values():
        c.close()


def _last_play(live: LiveServer, rec: str) -> tuple[int, dict[str, object]]:
    assert live.world is not None
    db = live.world.db

    async def q() -> tuple[int, dict[str, object]]:
        async with db.session() as s:
            cond = (LedgerEntry.subject == f"recording:{rec}") & (
                LedgerEntry.action == "web.recording_played"
            )
            n = int(await s.scalar(select(func.count()).where(cond)) or 0)
            last = await s.scalar(
                select(LedgerEntry).where(cond).order_by(LedgerEntry.seq.desc()).limit(1)
            )
            return n, json.loads(last.details) if last is not None else {}

    return live.call(q)


_numbers = st.one_of(
    st.just(""),
    st.integers(0, 10**6).map(str),
    st.integers(0, 10**30).map(str),
    st.integers(0, 99).map(lambda n: "0" * 5 + str(n)),
)
_ranges = st.one_of(
    st.none(),
    st.builds(
        lambda unit, a, b, sp: f"{unit}{sp}={sp}{a}{sp}-{sp}{b}",
        st.sampled_from(["bytes", "Bytes", "BYTES", "items", "byte", ""]),
        _numbers,
        _numbers,
        st.sampled_from(["", " "]),
    ),
    st.lists(st.builds(lambda a, b: f"{a}-{b}", _numbers, _numbers), min_size=2, max_size=4).map(
        lambda parts: "bytes=" + ",".join(parts)
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
).map(lambda h: h.strip() if h is not None else None)  # a header value has no edge spaces


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(header=_ranges, who=st.sampled_from(WHO), name=st.sampled_from(["bob1", "bob2"]))
def test_audio_answers_are_bounded_and_audited(
    prop_live: LiveServer,
    clients: dict[str, httpx.Client],
    header: str | None,
    who: str,
    name: str,
) -> None:
    assert prop_live.world is not None
    rec = prop_live.world.recordings[name]
    size = next(prop_live.world.layout.root.rglob(f"*{rec}.mp3")).stat().st_size
    before, _ = _last_play(prop_live, rec)
    r = clients[who].get(
        f"/api/recordings/{rec}/audio", headers={"Range": header} if header is not None else {}
    )
    assert r.status_code in (206, 416), (header, r.status_code, r.text[:200])
    assert len(r.content) < size
    after, last = _last_play(prop_live, rec)
    assert after == before + 1
    assert last["bytes"] == len(r.content) and last["status"] == r.status_code
    if r.status_code == 206:
        first, rest = r.headers["content-range"].removeprefix("bytes ").split("-")
        last_byte, total = rest.split("/")
        assert int(total) == size and int(last_byte) - int(first) + 1 == len(r.content)


_zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_dates = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), _zones)).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]),
    st.text(max_size=30),
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    since=st.one_of(st.none(), _dates),
    until=st.one_of(st.none(), _dates),
    path=st.sampled_from(["/api/recordings", "/", "/api/audit", "/audit"]),
)
def test_dates_never_reach_a_server_error(
    clients: dict[str, httpx.Client], since: str | None, until: str | None, path: str
) -> None:
    params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
    r = clients["alice"].get(path, params=params)
    assert r.status_code < 500, (path, params, r.text[:300])
    assert r.status_code in (200, 400, 422), (path, params, r.status_code)
    if r.status_code == 422 and path.startswith("/api"):
        assert r.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/?until=9999-12-31",
        "/audit?until=9999-12-31",
        "/api/recordings?since=0001-01-01T00:00:00%2B14:00",
        "/api/audit?until=9999-12-31T23:59:59-14:00",
    ],
)
def test_dates_out_of_range_are_422_with_a_message(
    clients: dict[str, httpx.Client], path: str
) -> None:
    r = clients["alice"].get(path)
    assert r.status_code == 422, r.text[:300]
    assert "date out of range" in r.text or "out of range" in r.text
