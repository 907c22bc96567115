"""Integration fixtures: a real recorder process on loopback, real sockets, a real index.

``recorder`` starts ``python -m siprec_recorder serve`` (see :mod:`siprec_recorder.testing`)
with SIP on ephemeral UDP and TCP ports, an RTP range of its own and the portal off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.testing import RecorderProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"

__all__ = ["PCAPS", "ROOT", "RecorderProcess", "write_config"]


@pytest.fixture
def recorder_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[RecorderProcess] = []

    def make(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> RecorderProcess:
        """A started recorder; ``env``: extra environment (e.g. the object store's keys)."""
        cfg = write_config(tmp_path, **sections)
        rp = RecorderProcess(
            workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings", env=env or {}
        )
        rp.start()
        started.append(rp)
        return rp

    yield make
    for rp in started:
        rp.stop()


@pytest.fixture
def recorder(recorder_factory: Any) -> RecorderProcess:
    return recorder_factory()  # type: ignore[no-any-return]
