"""The reconciliation pages: admins and auditors see runs and drill down to recordings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from siprec_recorder.assurance.cdr import read_cdr_file
from siprec_recorder.assurance.reconcile import reconcile_calls
from siprec_recorder.assurance.service import save_run
from siprec_recorder.policy.engine import PolicyEngine

from .fixtures import T0, World, record_call


async def make_run(world: World, tmp_path: Path) -> tuple[str, str]:
    short = await record_call(
        world, recorded="+32470000001", other="+3222000001", start=T0, seconds=2
    )
    path = tmp_path / "cdr.csv"
    z = "%Y-%m-%dT%H:%M:%SZ"
    path.write_text(
        "start,end,caller,callee\n"
        f"{T0:{z}},{T0 + timedelta(seconds=60):{z}},+32470000001,+3222000001\n"
        f"{T0 + timedelta(minutes=5):{z}},{T0 + timedelta(minutes=6):{z}},"
        "+32470000001,+3222000002\n",
        encoding="utf-8",
    )
    engine = PolicyEngine(world.db)
    try:
        report = await reconcile_calls(world.db, engine, read_cdr_file(path))
    finally:
        await engine.close()
    await save_run(world.db, report, actor="test", channels=[])
    return report.run_id, short


async def test_admin_and_auditor_drill_down(world: World, as_user: Any, tmp_path: Path) -> None:
    run_id, short = await make_run(world, tmp_path)
    for who in ("alice", "audrey"):
        c = await as_user(who)
        r = await c.get("/reconciliations")
        assert r.status_code == 200
        assert f'href="/reconciliations/{run_id}"' in r.text and "cdr.csv" in r.text
        r = await c.get(f"/reconciliations/{run_id}")
        assert r.status_code == 200
        assert f'href="/recordings/{short}"' in r.text
        assert "never offered" in r.text and "+3222000002" in r.text
        r = await c.get(f"/reconciliations/{run_id}?category=never_offered")
        assert "+3222000002" in r.text and f"/recordings/{short}" not in r.text
        r = await c.get(f"/reconciliations/{run_id}/exceptions.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.text.splitlines()[1].startswith("short,2,")
        r = await c.get(f"/recordings/{short}")
        assert r.status_code == 200


async def test_standard_users_are_refused(world: World, as_user: Any, tmp_path: Path) -> None:
    run_id, _ = await make_run(world, tmp_path)
    c = await as_user("bob")
    assert (await c.get("/reconciliations")).status_code == 403
    assert (await c.get(f"/reconciliations/{run_id}")).status_code == 403
    c = await as_user("alice")
    assert (await c.get("/reconciliations/nope")).status_code == 404
