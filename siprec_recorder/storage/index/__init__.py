"""The recording index: what was recorded, when, with whom, and how well.

* :mod:`.types` -- the values stored: ``NewRecording``, ``FinishedRecording``,
  ``DeclinedCall`` and their participants, streams and DTMF digits (no SQLAlchemy);
* :mod:`.protocol` -- ``RecordingIndex``, what the session layer is typed against;
* :mod:`.sql` -- ``SqlIndex``, that protocol (and the CLI's reads) on SQLAlchemy;
* :mod:`.search` -- the one number search, shared by the CLI and the portal.

Every name is re-exported here: ``from siprec_recorder.storage.index import SqlIndex``.
"""

from __future__ import annotations

from .protocol import RecordingIndex
from .search import filter_recordings, number_forms, number_selects, recordings_with_number
from .sql import SYSTEM_ACTOR, SqlIndex, recording_to_dict
from .types import (
    ANY_NODE,
    FINISHED_STATES,
    DeclinedCall,
    DtmfInfo,
    DtmfRow,
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    ParticipantRow,
    RecordingNotFound,
    StreamInfo,
    StreamRow,
    iso,
)

__all__ = [
    "ANY_NODE",
    "FINISHED_STATES",
    "SYSTEM_ACTOR",
    "DeclinedCall",
    "DtmfInfo",
    "DtmfRow",
    "FinishedRecording",
    "NewRecording",
    "ParticipantInfo",
    "ParticipantRow",
    "RecordingIndex",
    "RecordingNotFound",
    "SqlIndex",
    "StreamInfo",
    "StreamRow",
    "filter_recordings",
    "iso",
    "number_forms",
    "number_selects",
    "recording_to_dict",
    "recordings_with_number",
]
