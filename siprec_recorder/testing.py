"""Run a real recorder process for tests, benchmarks and support sessions.

:class:`RecorderProcess` starts ``python -m siprec_recorder serve`` with a config written into
a work folder (SIP on ephemeral UDP and TCP ports on loopback, an RTP range of its own, the
portal off unless asked), waits for its ready file, and drives it with the CLI exactly as an
ops script would. Nothing here is a mock: it is the shipped program on real sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RecorderProcess", "process_tree_cpu", "write_config"]


def _free_rtp_range(size: int = 400) -> tuple[int, int]:
    # Below the kernel's ephemeral ports (and below rtpengine's 20000-32000 in its test),
    # so a test's own sockets never take a recorder's RTP port.
    base = random.randrange(10000, 20000 - size, 2)
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
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the recorder

    def start(self, timeout: float = 30.0) -> None:
        ready = self.workdir / "ready"
        ready.unlink(missing_ok=True)
        self.log_path = self.workdir / f"recorder-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPREC__")}
        env.update(self.env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "siprec_recorder",
                "serve",
                "--config",
                str(self.config_path),
                "--ready-file",
                str(ready),
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
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
        # The recorder's own settings (e.g. the object store's keys), but not a fake clock:
        # the CLI stands for an operator, who lives on the real one.
        env.update({k: v for k, v in self.env.items() if k not in ("LD_PRELOAD", "FAKETIME")})
        res = subprocess.run(
            [sys.executable, "-m", "siprec_recorder", *args, "--config", str(self.config_path)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def search(self, *args: str) -> list[dict[str, Any]]:
        res = self.cli("search", "--json", "--limit", "1000", *args)
        return list(json.loads(res.stdout))

    def wait_for_recordings(
        self, count: int, timeout: float = 60.0, **filters: str
    ) -> list[dict[str, Any]]:
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
        raise AssertionError(
            f"expected {count} finished recordings, have {len(rows)}:\n{self.log()[-4000:]}"
        )


def write_config(workdir: Path, **sections: dict[str, Any]) -> Path:
    """Write a loopback test config into ``workdir``; ``sections`` override its keys."""
    port_min, port_max = _free_rtp_range()
    base: dict[str, dict[str, Any]] = {
        "sip": {"listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]},
        "rtp": {
            "address": "127.0.0.1",
            "port_min": port_min,
            "port_max": port_max,
            "inactivity_timeout": 10.0,
        },
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
    # What an operator does before the first start: the recorder refuses a missing folder.
    Path(base["storage"]["recordings_dir"]).mkdir(parents=True, exist_ok=True)
    return path


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, their children, ...)."""
    out: list[int] = []
    todo = _children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _cpu_and_peak_rss(p: int) -> tuple[float, int]:
    """User+system CPU seconds and peak RSS (KiB) of one process; raises OSError if gone."""
    try:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = 0
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss += int(line.split()[1])
    except (IndexError, ValueError) as exc:
        raise OSError(f"unreadable /proc entry of {p}") from exc
    return cpu, rss


def process_cpu(pid: int) -> dict[int, float]:
    """User+system CPU seconds of ``pid`` and of each of its live descendants, by pid."""
    out: dict[int, float] = {}
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            out[p] = _cpu_and_peak_rss(p)[0]
    return out


def process_tree_cpu(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, summed peak RSS in KiB) of ``pid`` and its live descendants."""
    total, rss = 0.0, 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            cpu, peak = _cpu_and_peak_rss(p)
            total += cpu
            rss += peak
    return total, rss
