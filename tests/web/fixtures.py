"""Shared builders for the portal tests: a real SQLite index, users, numbers, recordings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from siprec_recorder.policy.models import PolicyNumber
from siprec_recorder.services.users import add_user
from siprec_recorder.storage.db import Database, default_sqlite_url
from siprec_recorder.storage.files import FileLayout
from siprec_recorder.storage.index import (
    FinishedRecording,
    NewRecording,
    ParticipantInfo,
    SqlIndex,
    StreamInfo,
)
from siprec_recorder.storage.models import User
from siprec_recorder.storage.mp3 import encode_mp3
from siprec_recorder.storage.waveform import waveform_peaks

PASSWORD = "correct horse battery"
BOB_NUMBER = "+32470000001"
CAROL_NUMBER = "+32470000002"
FAR_END = "+32478999999"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class World:
    db: Database
    layout: FileLayout
    recordings: dict[str, str] = field(default_factory=dict)  # name -> id


def tone_pcm(seconds: float, freq: float = 440.0) -> np.ndarray:
    n = int(8000 * seconds)
    t = np.arange(n) / 8000.0
    # louder as it goes, so that the waveform has a shape
    return (
        (np.sin(2 * np.pi * freq * t) * 8000 * (0.2 + 0.8 * t / max(seconds, 1)))
        .astype(np.int16)
        .reshape(-1, 1)
    )


def tone_mp3(seconds: float, freq: float = 440.0) -> bytes:
    return encode_mp3(tone_pcm(seconds, freq), 8000, 32)


async def record_call(
    world: World,
    *,
    recorded: str,
    other: str,
    start: datetime,
    seconds: float,
    direction: str = "out",
) -> str:
    """Index a finished call with a real MP3 on disk, as the recorder does."""
    index = SqlIndex(world.db)
    parts = [
        ParticipantInfo(
            participant_id="a",
            aor=f"sip:{recorded}@sbc;user=phone",
            number=recorded,
            role="caller" if direction == "out" else "callee",
        ),
        ParticipantInfo(
            participant_id="b",
            aor=f"tel:{other}",
            number=other,
            role="callee" if direction == "out" else "caller",
        ),
    ]
    rec_id = await index.create_recording(
        NewRecording(
            call_id=f"call-{start.timestamp()}-{recorded}",
            start=start,
            recorded_number=recorded,
            other_number=other,
            direction=direction,
            participants=parts,
        )
    )
    rel = world.layout.relative_path(recorded, start, direction, other, rec_id)
    pcm = tone_pcm(seconds)
    sha, size = world.layout.write_atomic(rel, encode_mp3(pcm, 8000, 32))
    # as the finaliser does: a sidecar with the waveform's peaks
    world.layout.write_sidecar(rel, {"id": rec_id, "waveform": waveform_peaks(pcm, 8000)})
    await index.finish_recording(
        rec_id,
        FinishedRecording(
            end=start + timedelta(seconds=seconds),
            duration_s=seconds,
            file=rel,
            sha256=sha,
            size_bytes=size,
            sample_rate=8000,
            channels=1,
            streams=[
                StreamInfo(label="1", codec="PCMA", packets_received=int(seconds * 50)),
                StreamInfo(label="2", codec="PCMA", packets_received=int(seconds * 50)),
            ],
        ),
    )
    return rec_id


async def build_world(tmp: Path, *, must_change: bool = False) -> World:
    root = tmp / "recordings"
    root.mkdir(parents=True, exist_ok=True)
    db = Database(default_sqlite_url(root))
    await db.open()
    world = World(db, FileLayout(root))
    for login, role in (
        ("alice", "admin"),
        ("adam", "admin"),
        ("bob", "standard"),
        ("carol", "standard"),
        ("audrey", "auditor"),
    ):
        await add_user(
            db,
            actor="test",
            login=login,
            name=login.title(),
            role=role,
            password=PASSWORD,
            must_change_password=must_change,
        )
    async with db.session() as s:
        from sqlalchemy import select

        ids = {u.login: u.id for u in (await s.execute(select(User))).scalars()}
        s.add(
            PolicyNumber(
                number=BOB_NUMBER,
                user_id=ids["bob"],
                mode="professional",
                managed=False,
                status="manual",
                active=True,
            )
        )
        s.add(
            PolicyNumber(
                number=CAROL_NUMBER,
                user_id=ids["carol"],
                mode="professional",
                managed=False,
                status="manual",
                active=True,
            )
        )
        await s.commit()
    world.recordings["bob1"] = await record_call(
        world, recorded=BOB_NUMBER, other=FAR_END, start=T0, seconds=3.0, direction="out"
    )
    world.recordings["bob2"] = await record_call(
        world,
        recorded=BOB_NUMBER,
        other="+3225550000",
        start=T0 + timedelta(hours=2),
        seconds=12.0,
        direction="in",
    )
    world.recordings["carol1"] = await record_call(
        world,
        recorded=CAROL_NUMBER,
        other=FAR_END,
        start=T0 + timedelta(hours=1),
        seconds=6.0,
        direction="out",
    )
    return world
