"""Build tests/storage/data/release-0.1.0/: a recordings folder made by release 0.1.0.

Run with release 0.1.0's code (the last release, before Alembic), not this checkout's:

    R=<the release's commit>; rm -rf /tmp/r010 && mkdir /tmp/r010
    git archive $R siprec_recorder tests | tar -x -C /tmp/r010
    PYTHONPATH=/tmp/r010 python tests/storage/data/make_release_0_1_0.py \
        tests/storage/data/release-0.1.0

It records three calls through the index with real MP3s on disk (the portal's test world),
adds policy numbers through the policy service, a case with a label on one recording and a
retention rule, each leaving ledger entries, then keeps the SQLite index as a plain SQL dump
(``index.sql``; a binary database file would hide its contents from review) beside the files.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path


async def build(out: Path) -> None:
    # Release 0.1.0's module names (its portal tables were in web.models).
    from siprec_recorder.compliance.models import RetentionRule  # noqa: I001
    from siprec_recorder.policy.service import PolicyService
    from siprec_recorder.storage.ledger import append_event
    from siprec_recorder.web.models import Case, Label, RecordingLabel
    from tests.web.fixtures import build_world

    tmp = out.parent / (out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    world = await build_world(tmp)
    svc = PolicyService(world.db)
    await svc.add_number("+32470000003", actor="fixture")
    await svc.set_number("+32470000003", actor="fixture", beep=True)
    at = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    async with world.db.session() as s:
        label = Label(title="Case 2026-17", colour="#aa3300", created_by="alice", created_at=at)
        s.add(label)
        await s.flush()
        s.add(Case(title="Case 2026-17", label_id=label.id, owner="alice", created_at=at))
        s.add(
            RecordingLabel(
                recording_id=world.recordings["bob1"],
                label_id=label.id,
                added_by="alice",
                added_at=at,
            )
        )
        s.add(
            RetentionRule(
                number="+32470000001",
                until=datetime(2036, 1, 1, tzinfo=UTC),
                set_by="alice",
                set_at=at,
            )
        )
        await append_event(
            s,
            actor="alice",
            action="retention.raise",
            subject="+32470000001",
            details={"until": "2036-01-01"},
        )
        await s.commit()
    await world.db.close()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for path in (tmp / "recordings").rglob("*"):
        if path.is_file() and not path.name.startswith("index.sqlite3"):
            dest = out / "recordings" / path.relative_to(tmp / "recordings")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    conn = sqlite3.connect(tmp / "recordings" / "index.sqlite3")
    (out / "index.sql").write_text("\n".join(conn.iterdump()) + "\n", encoding="utf-8")
    conn.close()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    asyncio.run(build(Path(sys.argv[1]).resolve()))
