"""``siprec-recorder verify`` (the real command) on a store of real MP3s: clean is 0; a changed
byte, a deleted file, a stray file, and an edited, deleted, inserted or reordered ledger row
(raw SQL, as someone with write access to the database would do it) each give a non-zero exit
that names the problem."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import Store, tone_mp3

T = datetime(2026, 10, 5, 14, 0, tzinfo=UTC)


async def _three(store: Store) -> list[str]:
    files = []
    for i in range(3):
        rec_id = await store.add(T + timedelta(minutes=i), seconds=2.0 + i)
        row = await store.index.get(rec_id)
        assert row is not None and row["file"]
        files.append(row["file"])
    return files


def _sql(store: Store, *statements: str) -> None:
    conn = sqlite3.connect(store.root / "index.sqlite3")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_clean_store_verifies(store: Store) -> None:
    await _three(store)
    res = store.cli_subprocess("verify")  # the installed entry point, once
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok" in res.stdout


async def test_changed_byte_is_modified(store: Store) -> None:
    files = await _three(store)
    path = store.layout.absolute(files[1])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40  # one bit of one byte, size unchanged
    path.write_bytes(bytes(data))
    res = store.cli("verify")
    assert res.returncode != 0
    assert f"modified: {files[1]}: sha256" in res.stdout
    assert files[0] not in res.stdout and files[2] not in res.stdout


async def test_deleted_file_is_missing(store: Store) -> None:
    files = await _three(store)
    store.layout.absolute(files[0]).unlink()
    res = store.cli("verify")
    assert res.returncode != 0
    assert f"missing: {files[0]}" in res.stdout


async def test_stray_mp3_is_unknown(store: Store) -> None:
    files = await _three(store)
    stray = store.layout.absolute(files[0]).parent / "20261005T150000Z_in_1_deadbeef.mp3"
    stray.write_bytes(tone_mp3(1.0))
    res = store.cli("verify")
    assert res.returncode != 0
    assert "unknown: 32470000001/2026/10/05/20261005T150000Z_in_1_deadbeef.mp3" in res.stdout


LEDGER_TAMPERING = {
    # an audit entry's content changed
    "edit": (
        ["UPDATE ledger SET details = replace(details, 'complete', 'failed') WHERE seq = 2"],
        "entry 2 does not match its hash (edited)",
    ),
    # an entry removed from the middle
    "delete": (["DELETE FROM ledger WHERE seq = 3"], "entries 3 missing (deleted)"),
    # a forged entry slipped in at 3, the later ones renumbered to make room
    "insert": (
        [
            "UPDATE ledger SET seq = seq + 1000 WHERE seq >= 3",
            "UPDATE ledger SET seq = seq - 999 WHERE seq >= 1003",
            "INSERT INTO ledger (seq, ts, actor, action, subject, details, prev_hash, hash) "
            "SELECT 3, ts, 'system', 'recording.finished', subject, details, hash, "
            "'f00d' || substr(hash, 5) FROM ledger WHERE seq = 2",
        ],
        "entry 4 does not link to the entry before it",
    ),
    # two entries swapped in order
    "reorder": (
        [
            "UPDATE ledger SET seq = -1 WHERE seq = 2",
            "UPDATE ledger SET seq = 2 WHERE seq = 3",
            "UPDATE ledger SET seq = 3 WHERE seq = -1",
        ],
        "entry 2 does not link to the entry before it",
    ),
}


@pytest.mark.parametrize("how", sorted(LEDGER_TAMPERING))
async def test_ledger_tampering_is_named(store: Store, how: str) -> None:
    await _three(store)
    assert store.cli("verify").returncode == 0
    statements, expected = LEDGER_TAMPERING[how]
    _sql(store, *statements)
    res = store.cli("verify")
    assert res.returncode != 0, res.stdout
    assert "chain: ledger: " in res.stdout
    assert expected in res.stdout, res.stdout
    # Only the chain is reported: the files themselves are intact.
    assert "modified:" not in res.stdout and "missing:" not in res.stdout


async def test_entry_cut_from_the_end_is_named(store: Store) -> None:
    """Deleting the *last* entries leaves a chain that links; the ledger's head record
    (``ledger_head``, which names the last entry) is what shows it."""
    await _three(store)
    conn = sqlite3.connect(store.root / "index.sqlite3")
    last = conn.execute("SELECT max(seq) FROM ledger").fetchone()[0]
    conn.close()
    _sql(store, f"DELETE FROM ledger WHERE seq = {last}")
    res = store.cli("verify")
    assert res.returncode != 0
    assert "chain: ledger: " in res.stdout
    assert f"head names entry {last} but the chain ends at {last - 1}" in res.stdout
