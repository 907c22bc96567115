"""Prometheus lines of the transcription queue (added to ``/metrics`` when it runs)."""

from __future__ import annotations

from typing import Any

__all__ = ["transcription_metrics"]


def transcription_metrics(service: Any) -> list[str]:
    """The backlog gauge and the work counters of a :class:`TranscriptionService`."""
    return [
        "# HELP siprec_transcription_backlog Recordings waiting for or in transcription.",
        "# TYPE siprec_transcription_backlog gauge",
        f"siprec_transcription_backlog {service.backlog}",
        "# HELP siprec_transcriptions_total Transcripts stored.",
        "# TYPE siprec_transcriptions_total counter",
        f"siprec_transcriptions_total {service.done}",
        "# HELP siprec_transcriptions_failed_total Recordings given up after max_attempts.",
        "# TYPE siprec_transcriptions_failed_total counter",
        f"siprec_transcriptions_failed_total {service.failed}",
        "# HELP siprec_transcribed_audio_seconds_total Leg audio transcribed, in seconds.",
        "# TYPE siprec_transcribed_audio_seconds_total counter",
        f"siprec_transcribed_audio_seconds_total {service.audio_seconds:.3f}",
        "# HELP siprec_transcription_cpu_seconds_total CPU seconds the workers spent on it.",
        "# TYPE siprec_transcription_cpu_seconds_total counter",
        f"siprec_transcription_cpu_seconds_total {service.cpu_seconds:.3f}",
    ]
