"""Full-text search in transcripts with the database's own engine.

Query syntax (the same for the CLI, the API and the portal): words are all required (AND,
anywhere in the call: one on each leg is a match);
``"a price of"`` is a phrase (the words next to each other, in order); ``pri*`` is a
prefix. Everything else is taken as words: only letters and digits of the query reach the
engine, so no input can be an engine operator. SQLite: FTS5 ``MATCH`` on the
``transcript_fts`` table; PostgreSQL: ``tsvector @@ to_tsquery('simple', ...)``. Matching
segments give the recordings (to be combined with any other filter and the caller's access
rules) and the hits: where in the call each matching word was said, to the word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, intersect, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import RecorderError
from .models import TranscriptSegment

__all__ = ["TextQuery", "TextQueryError", "hits_for", "matching_segments", "parse_text_query"]

_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 16


class TextQueryError(RecorderError, ValueError):
    """A text query with nothing to search for, or too much."""


@dataclass(frozen=True, slots=True)
class TextQuery:
    """Parsed query: each term is a phrase (one or more words); the last word may be a prefix."""

    terms: tuple[tuple[tuple[str, ...], bool], ...]  # (words, prefix)

    def fts5(self) -> str:
        """FTS5 ``MATCH`` text of a segment that has any term."""
        parts = []
        for words, prefix in self.terms:
            phrase = '"' + " ".join(words) + '"'
            parts.append(phrase + ("*" if prefix else ""))
        return " OR ".join(parts)

    def tsquery(self) -> str:
        """``to_tsquery('simple', ...)`` text of a segment that has any term."""
        parts = []
        for words, prefix in self.terms:
            ws = list(words)
            if prefix:
                ws[-1] = ws[-1] + ":*"
            parts.append("(" + " <-> ".join(ws) + ")")
        return " | ".join(parts)

    def each(self) -> list[TextQuery]:
        """One query per term (a recording matches when it matches every one)."""
        return [TextQuery((t,)) for t in self.terms]

    def word_matches(self, word: str) -> bool:
        w = word.casefold()
        for words, prefix in self.terms:
            for i, q in enumerate(words):
                if w == q or (prefix and i == len(words) - 1 and w.startswith(q)):
                    return True
        return False


def parse_text_query(raw: str) -> TextQuery:
    """Parse the query syntax above; :class:`TextQueryError` when nothing is left to find."""
    terms: list[tuple[tuple[str, ...], bool]] = []
    for m in _TERM.finditer(raw or ""):
        phrase, bare = m.group(1), m.group(2)
        chunk = phrase if phrase is not None else bare
        words = tuple(w.casefold() for w in _WORD.findall(chunk))
        if not words:
            continue
        prefix = phrase is None and chunk.endswith("*")
        if phrase is None:
            for w in words[:-1]:  # "o'clock" -> o, clock: all required, in any place
                terms.append(((w,), False))
            terms.append(((words[-1],), prefix))
        else:
            terms.append((words, False))
    if not terms:
        raise TextQueryError("the text query has no words to search for")
    if len(terms) > MAX_TERMS:
        raise TextQueryError(f"the text query has more than {MAX_TERMS} terms")
    return TextQuery(tuple(terms))


def matching_segments(query: TextQuery, dialect: str) -> Select[Any]:
    """``SELECT`` of the segments that match (all columns), for either engine."""
    stmt = select(TranscriptSegment)
    if dialect == "postgresql":
        return stmt.where(
            text("transcript_segments.tsv @@ to_tsquery('simple', :tsq)").bindparams(
                tsq=query.tsquery()
            )
        )
    ids = text("SELECT rowid FROM transcript_fts WHERE transcript_fts MATCH :fts").bindparams(
        fts=query.fts5()
    )
    return stmt.where(TranscriptSegment.id.in_(ids))


def matching_recordings(query: TextQuery, dialect: str) -> Any:
    """``SELECT recording_id`` of the recordings whose transcript has every term."""
    parts = [
        select(TranscriptSegment.recording_id).where(
            TranscriptSegment.id.in_(select(matching_segments(t, dialect).subquery().c.id))
        )
        for t in query.each()
    ]
    return parts[0] if len(parts) == 1 else intersect(*parts)


def _hit(query: TextQuery, seg: TranscriptSegment) -> dict[str, Any]:
    at = seg.start_s
    for start, _end, word in seg.words or []:
        if any(query.word_matches(w) for w in _WORD.findall(str(word))):
            at = float(start)
            break
    return {
        "at_s": round(at, 2),
        "start_s": seg.start_s,
        "end_s": seg.end_s,
        "leg": seg.leg,
        "participant_id": seg.participant_id,
        "speaker": seg.speaker,
        "text": seg.text,
        "segment_id": seg.id,
    }


async def hits_for(
    session: AsyncSession, query: TextQuery, recording_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """For each of ``recording_ids``, the matching segments as hits (time of the first
    matching word), in call order."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in recording_ids}
    if not recording_ids:
        return out
    dialect = session.get_bind().dialect.name
    stmt = (
        matching_segments(query, dialect)
        .where(TranscriptSegment.recording_id.in_(list(recording_ids)))
        .order_by(TranscriptSegment.recording_id, TranscriptSegment.start_s)
    )
    for seg in (await session.scalars(stmt)).all():
        out[seg.recording_id].append(_hit(query, seg))
    return out
