"""The start-up check of the RTP range against the kernel's ephemeral ports."""

from __future__ import annotations

from pathlib import Path

from siprec_recorder.config import RtpConfig
from siprec_recorder.portrange import ephemeral_overlap


def test_overlap(tmp_path: Path) -> None:
    proc = tmp_path / "ip_local_port_range"
    proc.write_text("32768\t60999\n")
    assert ephemeral_overlap(20000, 39998, proc) == (32768, 60999)
    assert ephemeral_overlap(10000, 29998, proc) is None
    assert ephemeral_overlap(10000, 32766, proc) is None  # RTCP on 32767, just below
    assert ephemeral_overlap(10000, 32768, proc) == (32768, 60999)
    assert ephemeral_overlap(10000, 29998, tmp_path / "missing") is None


def test_shipped_default_is_below_linux_ephemeral_ports() -> None:
    rtp = RtpConfig()
    assert rtp.port_max + 1 < 32768
