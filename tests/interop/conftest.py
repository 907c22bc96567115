"""Fixtures for the interop and hostile-input tests: recorders shared by a whole module.

The integration ``recorder_factory`` starts one recorder per test; the interop tests run
dozens of SIPp instances or hundreds of messages against *one* recorder, so they get a
module-scoped recorder built the same way (same config writer, same process wrapper).
Results of the last run are written under ``build/interop/`` for :mod:`tests.interop.report`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RecorderProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "interop"


def start_recorder(workdir: Path, **sections: dict[str, Any]) -> RecorderProcess:
    """Start a recorder with its config, recordings and log inside ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = write_config(workdir, **sections)
    rp = RecorderProcess(workdir=workdir, config_path=cfg, recordings=workdir / "recordings")
    rp.start()
    return rp


@pytest.fixture(scope="module")
def module_recorders(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RecorderProcess]]:
    """``make(name, **sections)`` starts a recorder that lives until the module ends."""
    started: list[RecorderProcess] = []

    def make(name: str = "rec", **sections: dict[str, Any]) -> RecorderProcess:
        rp = start_recorder(tmp_path_factory.mktemp(name), **sections)
        started.append(rp)
        return rp

    yield make
    for rp in started:
        rp.stop()


def write_results(name: str, payload: Any) -> Path:
    """Store one suite's results as JSON for the report generator."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.fail(f"{name} is not installed; scripts/run-tests installs it")
