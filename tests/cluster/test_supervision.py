"""Recording never depends on the portal or the metrics endpoint (the real ``serve``)."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from siprec_recorder.testing import RecorderProcess, write_config
from tests.compliance.srcdriver import SrcCall

pytestmark = [pytest.mark.integration]


def _metrics(rec: RecorderProcess) -> str:
    host, port = rec.listeners["metrics"]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_a_taken_portal_port_does_not_stop_recording(tmp_path: Path) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    cfg = write_config(tmp_path, web={"enabled": True, "listen": f"127.0.0.1:{port}"})
    rec = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings")
    rec.start()
    try:
        call = SrcCall(rec.listeners["udp"], seed=5, caller="+32470000031")
        try:
            assert call.invite().status == 200
            call.start_audio(2.0)
            call.wait_audio(10)
            assert call.bye().status == 200
        finally:
            call.close()
        done = rec.wait_for_recordings(1, number="+32470000031")
        assert done[0]["state"] == "complete"
        errors = [line for line in rec.log().splitlines() if "portal:" in line]
        assert errors and f"cannot listen on 127.0.0.1:{port}" in errors[0]
        assert "recording goes on, retrying in" in errors[0]
        assert "Traceback" not in rec.log()
        text = _metrics(rec)
        assert 'siprec_component_up{component="portal"} 0' in text
        assert 'siprec_component_failures_total{component="portal"} 0' not in text
        # The port comes free: the portal is retried and serves.
        squatter.close()
        deadline = time.monotonic() + 40
        while 'siprec_component_up{component="portal"} 1' not in _metrics(rec):
            assert time.monotonic() < deadline, rec.log()[-2000:]
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
            assert r.status == 200
    finally:
        squatter.close()
        rec.stop()


def test_portal_runs_alone_against_the_same_index(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = write_config(tmp_path)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "siprec_recorder", "portal", "--config", str(cfg),
         "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert (tmp_path / "recordings" / "index.sqlite3").is_file()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
