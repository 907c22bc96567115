"""End to end: the replay tool against the real recorder process (the integration harness)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

harness = pytest.importorskip("tests.integration.conftest")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("transport", "capture", "extra", "expected"),
    [
        (
            "udp",
            "SIP_CALL_RTP_G711.pcap",
            [],
            {
                "1": ("sip:200.57.7.195:55061;user=phone", 891),
                "2": ("sip:francisco@bestel.com:55060", 548),
            },
        ),
        (
            "tcp",
            "sipnab_SIP_DTMF2.cap",
            ["--srtp"],
            {"1": ("sip:2502@192.168.105.105", 665), "2": ("sip:2504@192.168.105.105", 666)},
        ),
    ],
)
def test_replay_against_the_recorder(
    tmp_path: Path,
    transport: str,
    capture: str,
    extra: list[str],
    expected: dict[str, tuple[str, int]],
) -> None:
    cfg = harness.write_config(tmp_path)
    recorder = harness.RecorderProcess(
        workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings"
    )
    recorder.start()
    try:
        host, port = recorder.listeners[transport]
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "siprec_recorder",
                "replay",
                str(ROOT / "pcaps" / capture),
                "--to",
                f"{host}:{port}",
                "--transport",
                transport,
                "--speed",
                "10",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        (row,) = recorder.wait_for_recordings(1)
    finally:
        recorder.stop()
    assert row["state"] == "complete"
    aor_of = {p["participant_id"]: p["aor"] for p in row["participants"]}
    got = {
        s["label"]: (aor_of.get(s["participant_id"]), s["packets_received"]) for s in row["streams"]
    }
    assert got == expected
    assert all(s["srtp_auth_failures"] == 0 for s in row["streams"])
