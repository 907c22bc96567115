"""Waveform peaks: one list per channel, bounded length, loudness kept."""

from __future__ import annotations

import numpy as np

from siprec_recorder.storage.waveform import MAX_POINTS, waveform_peaks


def test_stereo_peaks_follow_each_leg() -> None:
    t = np.arange(8000 * 4)
    left = (np.sin(t / 3) * 30000).astype(np.int16)  # loud leg
    right = np.where(t < 16000, 0, 3000).astype(np.int16)  # silent, then quiet
    wave = waveform_peaks(np.stack([left, right], axis=1), 8000)
    loud, quiet = wave["channels"]
    assert len(loud) == len(quiet) == 80 and wave["points_per_second"] == 20
    assert min(loud) >= 90
    assert quiet[:40] == [0] * 40 and set(quiet[41:]) == {9}


def test_long_calls_are_bounded_and_empty_audio_is_flat() -> None:
    wave = waveform_peaks(np.ones((8000 * 600, 1), np.int16), 8000)
    assert len(wave["channels"][0]) == MAX_POINTS
    assert waveform_peaks(np.zeros((0, 1), np.int16), 8000)["channels"] == [[0]]
