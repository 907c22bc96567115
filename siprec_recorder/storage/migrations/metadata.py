"""The metadata every migration is compared with: the tables of every package of the product.

``storage`` is the bottom layer and knows nothing of ``policy``, ``web`` or ``compliance`` at
run time; the migrations themselves never import models (a revision must keep meaning what it
meant when it was written). Only autogenerate and the test that the models and the migration
head agree need the whole declared schema, and they get it here.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

__all__ = ["MODEL_MODULES", "target_metadata"]

#: Every module that declares tables on ``storage.models.Base``. A new package with tables
#: adds its models module here, or autogenerate would propose to drop its tables.
MODEL_MODULES = (
    "siprec_recorder.storage.models",
    "siprec_recorder.policy.models",
    "siprec_recorder.web.models",
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
