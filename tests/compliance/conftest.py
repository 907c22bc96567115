"""Fixtures of the compliance tests.

``store``: a real recordings tree and SQLite index in ``tmp_path`` (with a ``recorder.toml``
pointing at it, so the real CLI can be run against it), and a helper that adds a finished
recording with a real MP3 and sidecar the way the finaliser does. The integration fixtures
(``recorder_factory``: a real recorder process) are re-exported for the crash and disk tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import siprec_recorder.compliance.models  # noqa: F401 - declares retention_rules on Base
from siprec_recorder.cli import main as cli_main
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import (
    DeclinedCall,
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    SqlIndex,
)
from tests.integration.conftest import recorder_factory  # noqa: F401 - shared fixture

ROOT = Path(__file__).resolve().parents[2]


def tone_mp3(seconds: float = 2.0, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A real MP3 (mono) of a tone, encoded by the product's encoder."""
    from siprec_recorder.storage.mp3 import encode_mp3

    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16).reshape(-1, 1)
    return encode_mp3(pcm, rate, 32)


@dataclass
class Store:
    """A recordings folder + index, and a config file for the CLI."""

    root: Path
    config: Path
    db: Database
    index: SqlIndex
    layout: FileLayout

    async def add(
        self,
        start: datetime,
        *,
        recorded: str = "+32470000001",
        other: str = "+32470999999",
        state: str = "complete",
        seconds: float = 2.0,
        retention_until: datetime | None = None,
        reason: str | None = None,
        data: bytes | None = None,
    ) -> str:
        """A recording as the SRS leaves it (``declined``: a row only; others with media)."""
        participants = [
            ParticipantInfo(participant_id="a", aor=f"tel:{recorded}", number=recorded),
            ParticipantInfo(participant_id="b", aor=f"tel:{other}", number=other),
        ]
        if state == "declined":
            return await self.index.record_declined(
                DeclinedCall(
                    call_id=f"call-{start.timestamp()}",
                    start=start,
                    reason=reason or "outside-schedule",
                    recorded_number=recorded,
                    other_number=other,
                    participants=participants,
                )
            )
        rec_id = await self.index.create_recording(
            NewRecording(
                call_id=f"call-{start.timestamp()}",
                start=start,
                recorded_number=recorded,
                other_number=other,
                direction="out",
                participants=participants,
                retention_until=retention_until,
            )
        )
        if state == "recording":
            return rec_id
        end = start + timedelta(seconds=seconds)
        if state == "failed":
            await self.index.finish_recording(
                rec_id,
                FinishedRecording(
                    end=end, duration_s=0.0, state="failed", reason=reason or "no media"
                ),
            )
            return rec_id
        rel = self.layout.relative_path(recorded, start, "out", other, rec_id)
        sha, size = self.layout.write_atomic(rel, data if data is not None else tone_mp3(seconds))
        side = self.layout.write_sidecar(
            rel, {"id": rec_id, "sha256": sha, "start": start.isoformat()}
        )
        await self.index.finish_recording(
            rec_id,
            FinishedRecording(
                end=end,
                duration_s=seconds,
                state=state,
                reason=reason,
                file=rel,
                sidecar=side,
                sha256=sha,
                size_bytes=size,
                retention_until=retention_until,
            ),
        )
        return rec_id

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``siprec-recorder`` (its ``main``) against this store, in a thread of this
        process (the command's own event loop; about 20x faster than a new interpreter)."""
        argv = [*args, "--config", str(self.config)]
        out, err = io.StringIO(), io.StringIO()
        result: list[int] = []

        def run() -> None:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    result.append(cli_main(argv))
                except SystemExit as exc:  # argparse errors
                    result.append(int(exc.code or 0))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(120)
        return subprocess.CompletedProcess(argv, result[0], out.getvalue(), err.getvalue())

    def cli_subprocess(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the installed command in a new interpreter (``python -m siprec_recorder``)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "siprec_recorder", *args, "--config", str(self.config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
        )


def write_store_config(root: Path, **storage: Any) -> Path:
    values = {"recordings_dir": str(root), "min_free_mb": 0, **storage}
    lines = ["[storage]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    lines += ["", "[web]", "enabled = false", ""]
    path = root.parent / f"{root.name}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    root = tmp_path / "recordings"
    root.mkdir()
    database = Database(default_sqlite_url(root))
    await database.open()
    try:
        yield Store(
            root=root,
            config=write_store_config(root),
            db=database,
            index=SqlIndex(database),
            layout=FileLayout(root),
        )
    finally:
        await database.close()
