"""The integration fixtures (a real recorder process) for the transcription tests."""

from __future__ import annotations

from tests.integration.conftest import recorder_factory

__all__ = ["recorder_factory"]
