"""The portal of a real recorder process that has recorded a real call (replayed pcap).

The recorder runs as ``siprec-recorder serve`` with the portal on a loopback port; the call
comes from the replay tool (``SIP_CALL_RTP_G711.pcap``); the admin account is made with
``siprec-recorder users add``. Chromium then logs in (first login: forced password change),
finds the call, plays it in the page and downloads the MP3, which must be the indexed file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ROOT = Path(__file__).resolve().parents[2]

if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
harness = pytest.importorskip("tests.integration.conftest")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_portal_of_a_recorder_that_recorded_a_call(tmp_path: Path) -> None:
    port = _free_port()
    cfg = harness.write_config(tmp_path, web={"enabled": True, "listen": f"127.0.0.1:{port}"})
    recorder = harness.RecorderProcess(
        workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings"
    )
    recorder.start()
    try:
        recorder.cli(
            "users",
            "add",
            "olivia",
            "--role",
            "admin",
            "--name",
            "Olivia",
            "--password",
            "first-password-1",
        )
        host, sip_port = recorder.listeners["udp"]
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "siprec_recorder",
                "replay",
                str(ROOT / "pcaps" / "SIP_CALL_RTP_G711.pcap"),
                "--to",
                f"{host}:{sip_port}",
                "--transport",
                "udp",
                "--speed",
                "10",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        (row,) = recorder.wait_for_recordings(1)
        indexed = (tmp_path / "recordings" / row["file"]).read_bytes()
        _drive_portal(f"http://127.0.0.1:{port}", row, indexed, tmp_path)
        listed = recorder.cli("users", "list").stdout
        assert re.search(r"^olivia\s+admin", listed, re.M), listed
    finally:
        recorder.stop()


def _drive_portal(url: str, row: dict[str, Any], indexed: bytes, tmp: Path) -> None:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(base_url=url)
            page.set_default_timeout(20_000)
            page.goto("/login")
            page.fill("input[name=login]", "olivia")
            page.fill("input[name=password]", "first-password-1")
            page.click("main button[type=submit]")
            page.wait_for_url("**/password")
            page.fill("input[name=current]", "first-password-1")
            page.fill("input[name=new]", "a secret phrase of mine")
            page.fill("input[name=confirm]", "a secret phrase of mine")
            page.click("main button[type=submit]")
            page.wait_for_url(re.compile(r"/\?msg=password-changed"))
            assert page.text_content("#result-count").startswith("1 recording")
            page.click(f"tr[data-id='{row['id']}'] a")
            page.wait_for_url(f"**/recordings/{row['id']}")
            # the waveform from the peaks the finaliser kept in the sidecar
            page.wait_for_selector("canvas#waveform[data-drawn=yes]")
            page.evaluate("() => document.querySelector('audio#player').play()")
            for _ in range(150):
                if page.evaluate("() => document.querySelector('audio#player').currentTime") > 0.2:
                    break
                page.wait_for_timeout(100)
            else:
                raise AssertionError("the recorded call never played")
            duration = page.evaluate("() => document.querySelector('audio#player').duration")
            assert abs(duration - float(row["duration_s"])) < 1.0
            with page.expect_download() as info:
                page.click("#download")
            target = tmp / "download.mp3"
            info.value.save_as(target)
            got = target.read_bytes()
            assert got == indexed
            assert hashlib.sha256(got).hexdigest() == row["sha256"]
        finally:
            browser.close()
