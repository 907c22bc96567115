"""finalize_spool and a leg it cannot decode: silence in the MP3, its RTP kept beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siprec_recorder.compliance.crypto import EncryptionKey, decrypt_bytes
from siprec_recorder.rtp.codecs import alaw_encode
from siprec_recorder.rtp.packet import RtpPacket
from siprec_recorder.rtp.pcapio import iter_udp
from siprec_recorder.rtp.spoolfmt import SpoolRecord
from siprec_recorder.siprec.finalize import finalize_spool
from siprec_recorder.storage.spool import SpoolStore

START = 1_780_000_000.0


def _records(pt: int, payloads: list[bytes], ssrc: int, step: int) -> list[SpoolRecord]:
    return [
        SpoolRecord(START + 0.1 + 0.02 * i, 70000 + i, 2**32 + step * i, pt, i == 0, ssrc, p)
        for i, p in enumerate(payloads)
    ]


def _spool(root: Path, key_id: str | None = None) -> tuple[list[SpoolRecord], list[SpoolRecord]]:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    pcma = alaw_encode(tone)
    decodable = _records(8, [pcma[i : i + 160] for i in range(0, 8000, 160)], 0x1111, 160)
    ilbc = _records(99, [bytes([i % 256]) * 50 for i in range(34)], 0x2222, 240)
    manifest: dict[str, Any] = {
        "rec_id": "rec1",
        "call_id": "c1@test",
        "started_at": START,
        "recorded_number": "+32470000001",
        "other_number": "+32470000002",
        "direction": "out",
        "channels": "mono",
        "bitrate_kbps": 32,
        "key_id": key_id,
        "legs": [
            {"label": "a", "port": 40000, "rtpmaps": {"8": ["PCMA", 8000, None]}, "codec": "PCMA"},
            {
                "label": "b",
                "port": 40002,
                "rtpmaps": {"99": ["iLBC", 8000, "mode=30"]},
                "codec": "iLBC",
            },
        ],
    }
    session = SpoolStore(root).open_session("rec1", manifest)
    session.append("a", b"".join(r.encode() for r in decodable))
    session.append("b", b"".join(r.encode() for r in ilbc))
    session.flush()
    return decodable, ilbc


class _Keyring:
    def __init__(self, key: EncryptionKey) -> None:
        self.key = key

    def get(self, key_id: str) -> EncryptionKey | None:
        return self.key if key_id == self.key.key_id else None


@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "encrypted"])
def test_undecodable_leg_is_kept_as_pcap_named_by_the_sidecar(
    tmp_path: Path, encrypted: bool
) -> None:
    key = EncryptionKey.generate() if encrypted else None
    _decodable, ilbc = _spool(tmp_path, key.key_id if key else None)
    result = finalize_spool(
        str(tmp_path), "rec1", str(tmp_path), "complete", START + 1.5, None, None,
        _Keyring(key) if key else None,
    )  # fmt: skip
    assert result["state"] == "complete" and result["file"]
    a, b = result["streams"]
    assert a["status"] == "ok" and "raw_rtp" not in a
    assert b["status"] == "unsupported_codec" and b["packets_received"] == 34
    raw = b["raw_rtp"]
    mp3 = tmp_path / result["file"]
    kept = mp3.parent / raw["file"]
    assert kept.name == mp3.name[: -len(".mp3")] + ".leg2.pcap"
    assert raw["format"] == "pcap" and raw["packets"] == 34 and raw["encrypted"] is encrypted
    data = kept.read_bytes()
    assert hashlib.sha256(data).hexdigest() == raw["sha256"] and len(data) == raw["size_bytes"]
    if key is not None:
        assert data[:4] != b"\xd4\xc3\xb2\xa1"  # nothing in clear
        data = decrypt_bytes(data, key)
    datagrams = list(iter_udp(data))
    assert [(d.src, d.dst, d.sport, d.dport) for d in datagrams] == [
        ("192.0.2.1", "192.0.2.2", 0, 40002)
    ] * 34
    assert [d.timestamp for d in datagrams] == pytest.approx([r.arrival for r in ilbc], abs=1e-6)
    packets = [RtpPacket.parse(d.payload) for d in datagrams]
    assert [(p.sequence_number, p.timestamp, p.ssrc, p.payload_type) for p in packets] == [
        (r.ext_seq & 0xFFFF, r.ext_ts & 0xFFFFFFFF, 0x2222, 99) for r in ilbc
    ]
    assert [p.payload for p in packets] == [r.payload for r in ilbc]
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    # The sidecar says the same as the result.
    sidecar = json.loads((tmp_path / result["sidecar"]).read_text())
    assert sidecar["streams"][1]["raw_rtp"] == raw
    assert "raw_rtp" not in sidecar["streams"][0]


def test_every_leg_decodable_keeps_no_pcap(tmp_path: Path) -> None:
    _spool(tmp_path)
    store = SpoolStore(tmp_path)
    session = store.get("rec1")
    manifest = session.manifest
    manifest["legs"] = manifest["legs"][:1]
    session.update_manifest({"legs": manifest["legs"]})
    result = finalize_spool(str(tmp_path), "rec1", str(tmp_path), "complete", START + 1.5)
    mp3 = tmp_path / result["file"]
    assert sorted(p.suffix for p in mp3.parent.iterdir()) == [".json", ".mp3"]


def test_srtp_leg_that_never_authenticated_is_auth_failed(tmp_path: Path) -> None:
    """Every packet failed SRTP authentication (wrong key): none spooled, none decoded;
    the stream says auth_failed with the live receiver's count, not no_media."""
    _spool(tmp_path)
    session = SpoolStore(tmp_path).get("rec1")
    legs = session.manifest["legs"]
    legs.append(
        {
            "label": "c",
            "port": 40004,
            "rtpmaps": {"8": ["PCMA", 8000, None]},
            "codec": "PCMA",
            "srtp": True,
        }
    )
    session.update_manifest({"legs": legs})
    stats = {"c": {"packets_received": 0, "srtp_auth_failures": 500}}
    result = finalize_spool(str(tmp_path), "rec1", str(tmp_path), "complete", START + 1.5, stats)
    streams = {s["label"]: s for s in result["streams"]}
    assert streams["c"]["status"] == "auth_failed"
    assert streams["c"]["srtp_auth_failures"] == 500
    assert streams["a"]["status"] == "ok"
    # The recording is whole but for that leg, and its row says so.
    assert result["state"] == "complete" and result["file"]
    assert result["reason"] == "SRTP authentication failed on every packet of stream c"
    sidecar = json.loads((tmp_path / result["sidecar"]).read_text())
    assert {s["label"]: s["status"] for s in sidecar["streams"]}["c"] == "auth_failed"
    assert sidecar["reason"] == result["reason"]


def _only_srtp_leg(root: Path) -> None:
    manifest: dict[str, Any] = {
        "rec_id": "rec2",
        "call_id": "c2@test",
        "started_at": START,
        "channels": "mono",
        "bitrate_kbps": 32,
        "legs": [
            {
                "label": "1",
                "port": 40000,
                "rtpmaps": {"8": ["PCMA", 8000, None]},
                "codec": "PCMA",
                "srtp": True,
            }
        ],
    }
    SpoolStore(root).open_session("rec2", manifest).flush()


@pytest.mark.parametrize("ended_by", [None, "rtp timeout"])
def test_call_whose_only_leg_never_authenticated_fails_saying_why(
    tmp_path: Path, ended_by: str | None
) -> None:
    """No packet authenticated: no MP3 (nothing but garbage to put in it), state failed,
    and the reason names SRTP authentication, not "no media received"."""
    _only_srtp_leg(tmp_path)
    stats = {"1": {"packets_received": 0, "srtp_auth_failures": 400}}
    result = finalize_spool(
        str(tmp_path), "rec2", str(tmp_path), "complete", START + 8.0, stats, ended_by
    )
    assert result["state"] == "failed"
    assert result["file"] is None and result["sidecar"] is None
    note = "SRTP authentication failed on every packet of stream 1"
    assert result["reason"] == (note if ended_by is None else f"{ended_by}; {note}")
    (stream,) = result["streams"]
    assert stream["status"] == "auth_failed" and stream["srtp_auth_failures"] == 400


def test_srtp_leg_with_no_packets_at_all_is_no_media(tmp_path: Path) -> None:
    """Nothing came (rather than nothing authenticated): that is still "no media"."""
    _only_srtp_leg(tmp_path)
    stats = {"1": {"packets_received": 0, "srtp_auth_failures": 0}}
    result = finalize_spool(str(tmp_path), "rec2", str(tmp_path), "complete", START + 8.0, stats)
    assert result["state"] == "failed" and result["reason"] == "no media received"
    assert result["streams"][0]["status"] == "no_media"


def test_a_session_whose_media_never_came_is_not_complete(tmp_path: Path) -> None:
    """The rtpengine finding: the SRC refused our answer, no packet ever came, the SRC hung
    up, and the row said ``complete`` (padded silence). It is ``failed``, "no media"."""
    _only_srtp_leg(tmp_path)
    stats = {"1": {"packets_received": 0, "srtp_auth_failures": 0}}
    result = finalize_spool(
        str(tmp_path), "rec2", str(tmp_path), "complete", START + 8.0, stats, extend_to_end=True
    )
    assert result["state"] == "failed" and result["reason"] == "no media received"
