"""Per-leg transcription of finished recordings, off the recording path, and search by text.

See ``docs/transcription.md``. The worker processes (:mod:`.engine`) run faster-whisper on
CTranslate2 from a model folder the operator installed; the service (:mod:`.service`) keeps a
durable queue in the index database, stores each transcript as a record beside the MP3 and
indexes its segments for full-text search (:mod:`.search`).
"""

from __future__ import annotations

__all__: list[str] = []
