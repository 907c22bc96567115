"""Per-leg audio handed from the finaliser to the transcriber, through the local disk.

The finaliser has each leg alone on the recording's timeline just before it mixes them (the
MP3 may be mono, so the legs cannot be recovered from it). When transcription is on it writes
them to ``{dir}/{id}/leg{n}.pcm`` (signed 16-bit little-endian, the recording's sample rate,
sample 0 = second 0 of the MP3) with ``legs.json`` naming label, participant and rate, by
atomic rename, and encrypted like the MP3 when the recording is. The transcriber deletes the
folder once the transcript is stored. Times in the transcript are therefore positions in the
MP3, which is what the portal's player seeks to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["LEGS_FILE", "read_leg_audio", "remove_leg_audio", "write_leg_audio"]

LEGS_FILE = "legs.json"
_ID_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


def _job_dir(root: str | Path, rec_id: str) -> Path:
    if not _ID_RE.fullmatch(rec_id):
        raise ValueError(f"not a recording id: {rec_id!r}")
    return Path(root) / rec_id


def _write(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def write_leg_audio(
    root: str | Path,
    rec_id: str,
    legs: Sequence[Mapping[str, Any]],
    tracks: Mapping[str, npt.NDArray[np.int16]],
    sample_rate: int,
    key: Any = None,
) -> Path | None:
    """Write each leg's track (``legs``: the manifest's legs, in order); None when silent."""
    present = [(n, leg) for n, leg in enumerate(legs, 1) if len(tracks.get(leg["label"], ()))]
    if not present:
        return None
    folder = _job_dir(root, rec_id)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, leg in present:
        data = np.ascontiguousarray(tracks[leg["label"]], dtype="<i2").tobytes()
        if key is not None:
            from ..compliance.crypto import encrypt_bytes

            data, _ = encrypt_bytes(data, key)
        name = f"leg{number}.pcm"
        _write(folder / name, data)
        entries.append(
            {
                "file": name,
                "label": str(leg["label"]),
                "participant_id": leg.get("participant_id"),
                "sample_rate": int(sample_rate),
                "encrypted": key is not None,
                "key_id": getattr(key, "key_id", None),
            }
        )
    _write(folder / LEGS_FILE, json.dumps({"id": rec_id, "legs": entries}).encode())
    return folder


def read_leg_audio(
    root: str | Path, rec_id: str, keyring: Any = None
) -> list[tuple[dict[str, Any], npt.NDArray[np.int16]]]:
    """The legs written by :func:`write_leg_audio`, decrypted; [] when there are none."""
    folder = _job_dir(root, rec_id)
    try:
        doc = json.loads((folder / LEGS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    out = []
    for entry in doc["legs"]:
        data = (folder / Path(entry["file"]).name).read_bytes()
        if entry.get("encrypted"):
            from ..compliance.crypto import decrypt_for

            data = decrypt_for(data, keyring, entry.get("key_id"))
        out.append((dict(entry), np.frombuffer(data, dtype="<i2").astype(np.int16)))
    return out


def remove_leg_audio(root: str | Path, rec_id: str) -> None:
    """Delete a recording's per-leg audio (once transcribed, skipped or purged)."""
    shutil.rmtree(_job_dir(root, rec_id), ignore_errors=True)
