"""Encryption at rest: a call recorded with a key configured is stored encrypted, decrypts to
the audio that was sent with that key, and fails with another."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from siprec_recorder.compliance.crypto import (
    DecryptionError,
    EncryptionKey,
    decrypt_for,
    is_encrypted,
    load_keyring,
)
from siprec_recorder.replay.api import replay_capture

from .audio import decode_mp3, envelope_match
from .conftest import PCAPS
from .test_replay_g711 import expected_legs

pytestmark = [pytest.mark.integration]


def test_recording_is_encrypted_at_rest(recorder_factory: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "recording.key"
    key_file.write_text(os.urandom(32).hex())
    rec = recorder_factory(storage={"encryption_key_file": str(key_file)})
    result = asyncio.run(replay_capture(PCAPS / "pkts_sip_rtp.pcap", rec.listeners["udp"]))
    assert result.ok
    row = rec.wait_for_recordings(1)[0]
    assert row["state"] == "complete"
    blob = (rec.recordings / row["file"]).read_bytes()
    assert is_encrypted(blob) and b"LAME" not in blob and b"Info" not in blob[:200]
    ring = load_keyring(key_file=key_file)
    assert ring.current is not None
    mp3 = decrypt_for(blob, ring, ring.current.key_id)
    got, rate = decode_mp3(mp3)
    legs, _ = expected_legs(PCAPS / "pkts_sip_rtp.pcap")
    corr, _lag = envelope_match(got[:, 0], rate, legs["caller"], 8000)
    assert corr >= 0.9
    with pytest.raises(DecryptionError):
        decrypt_for(blob, EncryptionKey(os.urandom(32)), ring.current.key_id)
    # The index hash is over the stored (encrypted) bytes: verify checks what is on disk.
    assert rec.cli("verify").returncode == 0
