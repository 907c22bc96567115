"""An admin downloads a case as an e-discovery bundle from the portal; it verifies offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from siprec_recorder.compliance.bundle_verify import verify_bundle
from siprec_recorder.services.models import Case, Label, RecordingLabel
from siprec_recorder.storage.models import LedgerEntry

from .fixtures import T0, World


async def _case(world: World) -> int:
    async with world.db.session() as s:
        label = Label(title="Case 9", colour="#445566", created_by="alice", created_at=T0)
        s.add(label)
        await s.flush()
        case = Case(title="Case 9", label_id=label.id, owner="alice", created_at=T0)
        s.add(case)
        for name in ("bob1", "carol1"):
            s.add(
                RecordingLabel(
                    recording_id=world.recordings[name],
                    label_id=label.id,
                    added_by="alice",
                    added_at=T0,
                )
            )
        await s.commit()
        return case.id


async def test_admin_exports_a_case(world: World, as_user: Any, tmp_path: Path) -> None:
    case_id = await _case(world)
    alice = await as_user("alice")
    r = await alice.get(f"/api/cases/{case_id}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    bundle = tmp_path / "case.zip"
    bundle.write_bytes(r.content)
    problems, summary = verify_bundle(bundle)
    assert problems == [] and summary.startswith("2 recording(s)")
    async with world.db.session() as s:
        event = await s.scalar(select(LedgerEntry).where(LedgerEntry.action == "export.created"))
    assert event is not None and event.actor == "web:alice"

    bob = await as_user("bob")
    assert (await bob.get(f"/api/cases/{case_id}/export")).status_code == 403
