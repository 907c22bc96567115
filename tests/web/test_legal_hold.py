"""Legal holds placed in the portal, on one recording or on a case, against both stores.

A portal hold goes through the function the CLI's ``hold``/``release`` use
(``compliance.retention.change_legal_hold``): the index flag, one ledger event per recording
(``legal_hold.set`` / ``legal_hold.released``, the reason in its details), and, with an object
store, the S3 Object Lock legal hold of the recording's object. The S3 variant stores the
world's recordings in a real S3 server (SeaweedFS, ``tests/conftest.py``) as the uploader does
and reads each object's legal hold back from the server after a hold and after a release.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from siprec_recorder.services.settings import WebSettings
from siprec_recorder.storage.models import LedgerEntry, Recording
from siprec_recorder.storage.objects import (
    S3Settings,
    S3Store,
    StoreError,
    parse_store_url,
)
from siprec_recorder.testing_s3 import SeaweedS3

from .fixtures import T0, World
from .test_export_case import _case

PREFIX = "rec"


@dataclass
class Backend:
    """The portal's store (None: the folder, as ``serve`` builds it without recordings_url)
    and, for S3, the server and bucket to read the objects' holds back from."""

    name: str
    store: Any = None
    s3: SeaweedS3 | None = None
    bucket: str = ""

    async def holds(self, world: World) -> dict[str, str]:
        """``ON``/``OFF`` per recording name, as the S3 server itself reports it."""
        assert self.s3 is not None
        out: dict[str, str] = {}
        async with world.db.session() as s:
            files = {r.id: r.file for r in (await s.scalars(select(Recording))).all()}
        async with self.s3.client() as c:
            for name, rec_id in world.recordings.items():
                try:
                    got = await c.get_object_legal_hold(
                        Bucket=self.bucket, Key=f"{PREFIX}/{files[rec_id]}"
                    )
                except c.exceptions.ClientError as exc:
                    # Never held: the server has no legal hold configuration for it at all.
                    assert exc.response["Error"]["Code"] == "NoSuchObjectLegalHold", exc
                    out[name] = "OFF"
                    continue
                out[name] = got["LegalHold"]["Status"]
        return out


@pytest.fixture(params=["folder", "s3"])
async def backend(request: pytest.FixtureRequest, world: World) -> AsyncIterator[Backend]:
    if request.param == "folder":
        yield Backend("folder")
        return
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    name, prefix = parse_store_url(f"s3://{bucket}/{PREFIX}")
    store = S3Store(
        S3Settings(
            bucket=name,
            prefix=prefix,
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            object_lock="compliance",
        )
    )
    # What the uploader leaves behind: every recording in the store, with retention, no hold.
    async with world.db.session() as s:
        rows = (await s.scalars(select(Recording).where(Recording.file.is_not(None)))).all()
    for row in rows:
        assert row.file and row.sha256
        await store.put_file(
            row.file,
            world.layout.absolute(row.file),
            sha256=row.sha256,
            retain_until=T0.replace(year=T0.year + 5),
            legal_hold=False,
        )
    yield Backend("s3", store, server, bucket)
    await store.close()


@pytest.fixture
def settings(settings: WebSettings, backend: Backend) -> WebSettings:
    return dataclasses.replace(settings, store=backend.store)


async def _events(world: World, action: str) -> list[LedgerEntry]:
    async with world.db.session() as s:
        rows = await s.scalars(
            select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)
        )
        return list(rows.all())


async def test_recording_hold_and_release_reach_the_store(
    world: World, backend: Backend, as_user: Any
) -> None:
    rec_id = world.recordings["bob1"]
    alice = await as_user("alice")
    r = await alice.post(f"/api/recordings/{rec_id}/hold", json={"reason": "case 17"})
    assert r.status_code == 200, r.text
    assert r.json() == {"held": True, "changed": [rec_id], "unchanged": [], "store_errors": []}
    assert (await alice.get(f"/api/recordings/{rec_id}")).json()["legal_hold"] is True
    (event,) = await _events(world, "legal_hold.set")
    assert (event.actor, event.subject) == ("web:alice", rec_id)
    assert json.loads(event.details) == {"reason": "case 17"}
    if backend.s3 is not None:
        holds = await backend.holds(world)
        assert holds["bob1"] == "ON", holds
        assert {holds[n] for n in holds if n != "bob1"} == {"OFF"}

    # Again: nothing changes in the index, the store is (re)told all the same.
    r = await alice.post(f"/api/recordings/{rec_id}/hold", json={"reason": "case 17"})
    assert r.status_code == 200 and r.json()["unchanged"] == [rec_id]

    r = await alice.post(f"/api/recordings/{rec_id}/release", json={"reason": "case closed"})
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == [rec_id]
    assert (await alice.get(f"/api/recordings/{rec_id}")).json()["legal_hold"] is False
    (event,) = await _events(world, "legal_hold.released")
    assert event.actor == "web:alice" and json.loads(event.details) == {"reason": "case closed"}
    if backend.s3 is not None:
        assert set((await backend.holds(world)).values()) == {"OFF"}


async def test_case_hold_and_release_reach_the_store(
    world: World, backend: Backend, as_user: Any
) -> None:
    case_id = await _case(world)  # bob1 and carol1 carry the case's label
    in_case = sorted([world.recordings["bob1"], world.recordings["carol1"]])
    alice = await as_user("alice")
    r = await alice.post(f"/api/cases/{case_id}/hold", json={"reason": "FCA request 9"})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == in_case and r.json()["case_id"] == case_id
    held = await _events(world, "legal_hold.set")
    assert sorted(e.subject for e in held) == in_case
    assert all(e.actor == "web:alice" for e in held)
    assert all(json.loads(e.details) == {"reason": "FCA request 9"} for e in held)
    (case_event,) = await _events(world, "legal_hold.case_set")
    assert case_event.subject == f"case:{case_id}"
    async with world.db.session() as s:
        flags = {r.id: r.legal_hold for r in (await s.scalars(select(Recording))).all()}
    assert {i for i, f in flags.items() if f} == set(in_case)
    if backend.s3 is not None:
        holds = await backend.holds(world)
        assert {n for n, h in holds.items() if h == "ON"} == {"bob1", "carol1"}, holds

    r = await alice.post(f"/api/cases/{case_id}/release", json={})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == in_case
    assert len(await _events(world, "legal_hold.released")) == 2
    if backend.s3 is not None:
        assert set((await backend.holds(world)).values()) == {"OFF"}


async def test_only_admins_hold_and_a_hold_needs_a_reason(
    world: World, backend: Backend, as_user: Any
) -> None:
    rec_id = world.recordings["bob1"]
    case_id = await _case(world)
    bob = await as_user("bob")
    auditor = await as_user("audrey")
    for c in (bob, auditor):
        assert (
            await c.post(f"/api/recordings/{rec_id}/hold", json={"reason": "x"})
        ).status_code == 403
        assert (await c.post(f"/api/cases/{case_id}/hold", json={"reason": "x"})).status_code == 403
    alice = await as_user("alice")
    r = await alice.post(f"/api/recordings/{rec_id}/hold", json={"reason": "   "})
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    assert (await alice.post(f"/api/recordings/{rec_id}/hold", json={})).status_code == 422
    assert (await alice.post("/api/recordings/nope/hold", json={"reason": "x"})).status_code == 404
    assert (await alice.post("/api/cases/999/hold", json={"reason": "x"})).status_code == 404
    assert await _events(world, "legal_hold.set") == []


class UnreachableStore:
    """An object store that cannot be reached: every call to it fails."""

    url = "s3://gone/rec/"
    is_local = False

    async def protect(self, key: str, retain_until: Any, legal_hold: bool) -> bool:
        raise StoreError(f"{key}: connection refused")

    async def close(self) -> None:
        return None


async def test_an_unreachable_store_is_a_503_and_asking_again_repairs_it(
    world: World, as_user: Any, app: Any
) -> None:
    rec_id = world.recordings["bob1"]
    portal = app.state.portal
    portal.cases._settings = dataclasses.replace(portal.cases._settings, store=UnreachableStore())
    alice = await as_user("alice")
    r = await alice.post(f"/api/recordings/{rec_id}/hold", json={"reason": "case 3"})
    assert r.status_code == 503 and "ask again" in r.json()["detail"], r.text
    # The index hold stands (nothing may delete the recording meanwhile).
    assert (await alice.get(f"/api/recordings/{rec_id}")).json()["legal_hold"] is True
