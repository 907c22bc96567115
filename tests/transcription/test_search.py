"""Text search on SQLite FTS5 and PostgreSQL tsvector, through the stored-transcript path.

Each test runs on SQLite and on PostgreSQL (``pg_url``: a private server, or the one
``SIPREC_TEST_DATABASE_URL`` names; its ``public`` schema is dropped and recreated per
test). Transcripts are stored with :func:`store_transcript` (file, rows, ledger) from a
worker-shaped result, so no model runs here: what is under test is storing, the engines'
matching and the hit times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

import siprec_recorder.compliance.models  # noqa: F401  (retention tables)
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import (
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    SqlIndex,
)
from siprec_recorder.storage.integrity import verify
from siprec_recorder.storage.models import LedgerEntry, Recording
from siprec_recorder.transcription.cli import search_by_text
from siprec_recorder.transcription.models import TranscriptSegment
from siprec_recorder.transcription.search import TextQueryError, parse_text_query
from siprec_recorder.transcription.store import (
    store_transcript,
    transcript_files,
    verify_transcripts,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: Any, tmp_path: Path, pg_url: str) -> AsyncIterator[Database]:
    if request.param == "postgresql":
        if not pg_url.startswith("postgresql"):
            pytest.skip("no PostgreSQL: set SIPREC_TEST_DATABASE_URL or install postgresql")
        database = Database(pg_url)
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    else:
        database = Database(default_sqlite_url(tmp_path))
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def _words(sentence: str, start: float, step: float = 0.4) -> list[list[Any]]:
    return [
        [round(start + i * step, 2), round(start + (i + 1) * step, 2), " " + w]
        for i, w in enumerate(sentence.split())
    ]


def _leg(label: str, pid: str, sentence: str, start: float) -> dict[str, Any]:
    return {
        "label": label,
        "participant_id": pid,
        "language": "en",
        "segments": [
            {
                "start_s": start,
                "end_s": start + 0.4 * len(sentence.split()),
                "text": sentence,
                "confidence": 0.8,
                "words": _words(sentence, start),
            }
        ],
    }


async def _call(
    db: Database, layout: FileLayout, number: str, caller_says: str, callee_says: str, hours: int
) -> str:
    index = SqlIndex(db)
    start = T0 + timedelta(hours=hours)
    rec_id = await index.create_recording(
        NewRecording(
            call_id=f"c{hours}",
            start=start,
            recorded_number=number,
            other_number="+3225551234",
            direction="out",
            participants=[
                ParticipantInfo(participant_id="p1", aor=f"tel:{number}", number=number),
                ParticipantInfo(
                    participant_id="p2", aor="tel:+3225551234", number="+3225551234", name="Eve"
                ),
            ],
        )
    )
    rel = layout.relative_path(number, start, "out", "+3225551234", rec_id)
    sha, size = layout.write_atomic(rel, b"ID3 not really an mp3")
    await index.finish_recording(
        rec_id,
        FinishedRecording(
            end=start + timedelta(seconds=10), duration_s=10, file=rel, sha256=sha, size_bytes=size
        ),
    )
    result = {
        "model": "tiny.en",
        "legs": [_leg("1", "p1", caller_says, 0.5), _leg("2", "p2", callee_says, 5.0)],
    }
    assert await store_transcript(db, layout, rec_id, result) is not None
    return rec_id


@pytest.fixture
async def calls(db: Database, tmp_path: Path) -> dict[str, str]:
    layout = FileLayout(tmp_path / "rec")
    return {
        "a": await _call(
            db, layout, "+32470000001", "I promise a price of forty euros", "Deal, buy it", 0
        ),
        "b": await _call(
            db, layout, "+32470000002", "the price is too high", "we sell the bonds now", 1
        ),
        "c": await _call(db, layout, "+32470000001", "pricing is fine", "see you on Friday", 2),
    }


async def _ids(db: Database, q: str, **kw: Any) -> set[str]:
    return {r["id"] for r in await search_by_text(db, q, **kw)}


async def test_words_phrases_prefixes(db: Database, calls: dict[str, str]) -> None:
    assert await _ids(db, "price") == {calls["a"], calls["b"]}
    assert await _ids(db, "PRICE") == {calls["a"], calls["b"]}
    assert await _ids(db, "pric*") == {calls["a"], calls["b"], calls["c"]}
    assert await _ids(db, '"price of forty"') == {calls["a"]}
    assert await _ids(db, '"forty price"') == set()
    assert await _ids(db, "price bonds") == {calls["b"]}  # every word, on either leg
    assert await _ids(db, "friday") == {calls["c"]}
    assert await _ids(db, "zebra") == set()


async def test_combined_with_number_and_time(db: Database, calls: dict[str, str]) -> None:
    assert await _ids(db, "pric*", number=["+32470000001"]) == {calls["a"], calls["c"]}
    assert await _ids(db, "pric*", since=T0 + timedelta(minutes=30)) == {calls["b"], calls["c"]}
    assert await _ids(db, "pric*", until=T0 + timedelta(minutes=30)) == {calls["a"]}


async def test_hits_say_who_and_when(db: Database, calls: dict[str, str]) -> None:
    (row,) = await search_by_text(db, "euros")
    (hit,) = row["hits"]
    # "euros" is the 7th word of the caller's segment (0.5 s + 6 * 0.4 s).
    assert hit["at_s"] == pytest.approx(2.9)
    assert hit["leg"] == "1" and hit["speaker"] == "+32470000001"
    (row,) = await search_by_text(db, "deal")
    assert row["hits"][0]["speaker"] == "Eve" and row["hits"][0]["at_s"] == pytest.approx(5.0)


async def test_stored_as_a_record(db: Database, calls: dict[str, str], tmp_path: Path) -> None:
    layout = FileLayout(tmp_path / "rec")
    (f,) = await transcript_files(db, calls["a"])
    assert f["file"].endswith(".transcript.json") and f["key_id"] is None
    async with db.session() as s:
        entry = (
            await s.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.action == "transcript.stored", LedgerEntry.subject == calls["a"]
                )
            )
        ).one()
    assert f["sha256"] in entry.details
    assert await verify_transcripts(db, layout) == []
    assert [p for p in await verify(db, layout) if "transcript" in p.subject] == []
    path = layout.absolute(f["file"])
    path.write_bytes(path.read_bytes().replace(b"euros", b"pound"))
    (problem,) = await verify_transcripts(db, layout)
    assert problem.kind == "modified" and problem.subject == f["file"]


async def test_purge_takes_the_transcript(
    db: Database, calls: dict[str, str], tmp_path: Path
) -> None:
    from siprec_recorder.compliance.retention import purge, set_hold

    layout = FileLayout(tmp_path / "rec")
    (fa,) = await transcript_files(db, calls["a"])
    (fb,) = await transcript_files(db, calls["b"])
    later = T0 + timedelta(days=366 * 6)
    await set_hold(db, calls["b"], actor="test", reason="case 7", now=later)
    report = await purge(db, layout, later)
    assert calls["a"] in {p.rec_id for p in report.purged} and calls["b"] in report.held
    assert not layout.absolute(fa["file"]).exists()
    assert layout.absolute(fb["file"]).exists()  # on legal hold: kept, still searchable
    assert await _ids(db, "price") == {calls["b"]}
    async with db.session() as s:
        left = await s.scalar(
            select(func.count())
            .select_from(TranscriptSegment)
            .where(TranscriptSegment.recording_id == calls["a"])
        )
        state = await s.scalar(select(Recording.state).where(Recording.id == calls["a"]))
    assert left == 0 and state == "purged"


def test_query_errors() -> None:
    for q in ("", "   ", '""', "*", "!!! ---"):
        with pytest.raises(TextQueryError):
            parse_text_query(q)
    with pytest.raises(TextQueryError):
        parse_text_query(" ".join(f"w{i}" for i in range(17)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(min_size=1, max_size=40))
async def test_any_query_is_data_never_syntax(db: Database, calls: dict[str, str], q: str) -> None:
    try:
        parse_text_query(q)
    except TextQueryError:
        return
    rows = await search_by_text(db, q)  # never an engine syntax error
    assert {r["id"] for r in rows} <= set(calls.values())
