"""Operator mistakes in ``[transcription]`` get one line naming the key, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from siprec_recorder.config import build_config
from siprec_recorder.errors import ConfigError
from siprec_recorder.testing import write_config

engine = pytest.importorskip("siprec_recorder.transcription.engine")
pytest.importorskip("faster_whisper")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model_path": "/nonexistent"}, "[transcription] model_path: no model.bin in"),
        ({"model_sha256": "abc"}, "[transcription] model_sha256: 64 lower-case hex digits"),
        ({"max_workers": 0}, "[transcription] max_workers: must be between 1 and 64"),
        ({"nice": 25}, "[transcription] nice: must be between 0 and 19"),
        ({"languages": ["EN"]}, "[transcription] languages: 'EN' is not a language code"),
        ({"beam_size": 0}, "[transcription] beam_size: must be between 1 and 10"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"transcription": {"enabled": True, **values}})
    assert str(info.value).startswith(message), str(info.value)


def test_disabled_section_is_not_checked() -> None:
    assert not build_config({"transcription": {"model_path": "/nonexistent"}}).transcription.enabled


def test_model_folder_checks(tmp_path: Path) -> None:
    with pytest.raises(engine.ModelError, match="missing model.bin, config.json"):
        engine.check_model(tmp_path)
    shipped = engine.shipped_model_path()
    assert shipped is not None
    engine.check_model(shipped, engine.PACKAGED_MODEL_SHA256)
    with pytest.raises(engine.ModelError, match="not the pinned"):
        engine.check_model(shipped, "0" * 64)


def test_serve_refuses_another_model_in_one_line(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path, transcription={"enabled": True, "model_sha256": "0" * 64, "languages": ["en"]}
    )
    res = subprocess.run(
        [sys.executable, "-m", "siprec_recorder", "serve", "--config", str(cfg)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "[transcription] model_sha256:" in lines[0], res.stderr
