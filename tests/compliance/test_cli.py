"""The real ``siprec-recorder`` commands: hold, release, purge [--dry-run], retention extend
(by recording and by number), report completeness (table and JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .conftest import Store

OLD = datetime(2020, 3, 2, 10, 0, tzinfo=UTC)  # past its 5 years today
YOUNG = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


async def test_hold_purge_release_extend_report(store: Store) -> None:
    held = await store.add(OLD)
    due = await store.add(OLD.replace(minute=5), recorded="+32470000009")
    young = await store.add(YOUNG)
    declined = await store.add(YOUNG.replace(minute=1), state="declined", reason="private-mode")
    files = {r: (await store.index.get(r) or {})["file"] for r in (held, due, young)}

    res = store.cli_subprocess("hold", held, "--reason", "FCA case 7")  # the real entry point
    assert res.returncode == 0 and "is now on legal hold" in res.stdout, res.stdout + res.stderr
    assert store.cli("hold", held).returncode == 2  # --reason is required

    res = store.cli("purge", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"would purge {due}" in res.stdout
    assert f"kept {held}: past retention but on legal hold" in res.stdout
    assert young not in res.stdout
    assert all((store.root / f).exists() for f in files.values())

    res = store.cli("purge")
    assert res.returncode == 0, res.stderr
    assert f"purged {due}" in res.stdout
    assert (
        "1 recording(s) purged, 1 kept on legal hold, 0 refused by the store, 0 error(s)"
        in res.stdout
    )
    assert not (store.root / files[due]).exists()
    assert (store.root / files[held]).exists()

    res = store.cli("release", held, "--reason", "case closed")
    assert res.returncode == 0 and "released from legal hold" in res.stdout
    res = store.cli("purge", "--json")
    assert [p["id"] for p in json.loads(res.stdout)["purged"]] == [held]
    assert not (store.root / files[held]).exists()
    assert store.cli("hold", held, "--reason", "too late").returncode == 1  # purged

    res = store.cli("retention", "extend", young, "--until", "2029-01-01")
    assert res.returncode == 1 and "never shortened" in res.stdout
    res = store.cli("retention", "extend", young, "--until", "2040-01-01")
    assert res.returncode == 0 and "kept until 2040-01-01T00:00:00Z" in res.stdout
    res = store.cli("retention", "extend", "--number", "0470 00 00 01", "--until", "2045-06-30")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "recordings of +32470000001 are kept at least until 2045-06-30" in res.stdout
    assert "1 existing recording(s) extended" in res.stdout
    res = store.cli("retention", "show", young)
    assert json.loads(res.stdout)["retention_until"] == "2045-06-30T00:00:00Z"
    assert store.cli("retention", "extend", "--until", "2040-01-01").returncode == 1

    res = store.cli("report", "completeness", "--since", "2020-01-01", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["counts"]["offered"] == 4
    assert doc["counts"]["complete"] == 3 and doc["counts"]["purged"] == 2
    assert doc["counts"]["declined"] == 1
    assert doc["declined_by_reason"] == {"private-mode": 1}
    assert {s["id"] for s in doc["sessions"]} == {held, due, young, declined}
    res = store.cli("report", "completeness", "--since", "2020-01-01T00:00:00Z")
    assert "offered 4: accepted 3 (complete 3" in res.stdout
    assert "declined, private-mode: 1" in res.stdout

    res = store.cli(
        "hold", "--number", "+32 470 00 00 01", "--since", "2025-01-01", "--reason", "case 12"
    )
    assert res.returncode == 0 and f"recording {young} on legal hold" in res.stdout, res.stdout
    assert "1 recording(s) put on hold, 0 already held" in res.stdout
    assert store.cli("hold", young, "--since", "2025-01-01", "--reason", "x").returncode == 1
    res = store.cli("release", "--number", "0470000001")
    assert res.returncode == 0 and "1 recording(s) released" in res.stdout

    # Every one of these actions is in the audit ledger, by the CLI's actor; and it verifies.
    res = store.cli("verify")
    assert res.returncode == 0, res.stdout
