"""Integration fixtures: a real recorder process on loopback, real sockets, a real index.

``recorder`` starts ``python -m siprec_recorder serve`` with a config written into tmp_path
(SIP on ephemeral UDP and TCP ports, an RTP range of its own, the portal off) and waits for
its ready file. Helpers drive it with the CLI exactly as an ops script would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"


def _free_rtp_range(size: int = 400) -> tuple[int, int]:
    base = random.randrange(40000, 60000 - size, 2)
    return base, base + size


@dataclass
class RecorderProcess:
    """A running recorder and the means to drive and inspect it."""

    workdir: Path
    config_path: Path
    recordings: Path
    proc: subprocess.Popen[bytes] | None = None
    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)
    log_path: Path | None = None

    def start(self, timeout: float = 30.0) -> None:
        ready = self.workdir / "ready"
        ready.unlink(missing_ok=True)
        self.log_path = self.workdir / f"recorder-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "siprec_recorder", "serve", "--config", str(self.config_path),
             "--ready-file", str(ready)],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().endswith("\n"):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"recorder exited early:\n{self.log()}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"recorder not ready in {timeout}s:\n{self.log()}")
        self.listeners = {}
        for line in ready.read_text().split():
            transport, host, port = line.rsplit(":", 2)
            self.listeners[transport] = (host, int(port))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
        res = subprocess.run(
            [sys.executable, "-m", "siprec_recorder", *args, "--config", str(self.config_path)],
            cwd=self.workdir, capture_output=True, text=True, env=env, timeout=120,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def search(self, *args: str) -> list[dict[str, Any]]:
        res = self.cli("search", "--json", "--limit", "1000", *args)
        return list(json.loads(res.stdout))

    def wait_for_recordings(self, count: int, timeout: float = 60.0, **filters: str) -> list[dict[str, Any]]:
        args: list[str] = []
        for k, v in filters.items():
            args += [f"--{k}", v]
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = [r for r in self.search(*args) if r["state"] not in ("recording",)]
            if len(rows) >= count:
                return rows
            time.sleep(0.5)
        raise AssertionError(f"expected {count} finished recordings, have {len(rows)}:\n{self.log()[-4000:]}")


def write_config(workdir: Path, **sections: dict[str, Any]) -> Path:
    port_min, port_max = _free_rtp_range()
    base: dict[str, dict[str, Any]] = {
        "sip": {"listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]},
        "rtp": {"address": "127.0.0.1", "port_min": port_min, "port_max": port_max,
                "inactivity_timeout": 10.0},
        "storage": {"recordings_dir": str(workdir / "recordings"), "min_free_mb": 0},
        "recording": {"channels": "mono"},
        "web": {"enabled": False},
        "metrics": {"listen": "127.0.0.1:0"},
        "log": {"level": "INFO"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        for k, v in values.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    path = workdir / "recorder.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def recorder_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[RecorderProcess] = []

    def make(**sections: dict[str, Any]) -> RecorderProcess:
        cfg = write_config(tmp_path, **sections)
        rp = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings")
        rp.start()
        started.append(rp)
        return rp

    yield make
    for rp in started:
        rp.stop()


@pytest.fixture
def recorder(recorder_factory: Any) -> RecorderProcess:
    return recorder_factory()  # type: ignore[no-any-return]
