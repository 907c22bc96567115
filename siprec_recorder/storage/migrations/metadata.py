"""The metadata every migration is compared with: the tables of every package of the product.

``storage`` is the bottom layer and knows nothing of ``policy``, ``web`` or ``compliance`` at
run time; the migrations themselves never import models (a revision must keep meaning what it
meant when it was written). Only autogenerate and the test that the models and the migration
head agree need the whole declared schema, and they get it here.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

__all__ = ["MODEL_MODULES", "include_object", "is_full_text", "target_metadata"]

#: Every module that declares tables on ``storage.models.Base``. A new package with tables
#: adds its models module here, or autogenerate would propose to drop its tables.
MODEL_MODULES = (
    "siprec_recorder.storage.models",
    "siprec_recorder.storage.cases",
    "siprec_recorder.policy.models",
    "siprec_recorder.services.models",
    "siprec_recorder.compliance.models",
    "siprec_recorder.assurance.models",
    "siprec_recorder.transcription.models",
    "siprec_recorder.cluster.models",
)


def target_metadata() -> MetaData:
    """``Base.metadata`` with the tables of every package of :data:`MODEL_MODULES` on it."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from ..models import Base

    return Base.metadata


#: The transcript full-text index is raw DDL (an FTS5 virtual table and its shadow tables on
#: SQLite, a generated tsvector column and its GIN index on PostgreSQL), not model objects.
_FULL_TEXT_TABLE = "transcript_fts"
_FULL_TEXT_NAMES = frozenset({"tsv", "ix_transcript_segments_tsv"})


def is_full_text(name: str | None) -> bool:
    """Is ``name`` part of the transcript full-text index that the models do not declare?"""
    return bool(name) and (str(name).startswith(_FULL_TEXT_TABLE) or name in _FULL_TEXT_NAMES)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's filter: compare everything but the full-text index's own objects."""
    return not (reflected and compare_to is None and is_full_text(name))
