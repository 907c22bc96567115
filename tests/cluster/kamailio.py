"""Run the shipped Kamailio configuration (config/kamailio/) on loopback for a test.

The config is copied into a temp folder; only its ``substdef`` lines (listen address,
dispatcher list, probe interval) are rewritten, and the dispatcher list names the recorder
nodes under test.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "kamailio" / "kamailio.cfg"

__all__ = ["Kamailio", "free_udp_port"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kamailio:
    def __init__(self, workdir: Path, nodes: list[tuple[str, int]], probe_interval: int = 1):
        self.workdir = workdir
        self.port = free_udp_port()
        self.nodes = nodes
        self.probe_interval = probe_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kamailio.log"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> None:
        if shutil.which("kamailio") is None:
            raise RuntimeError("kamailio is not installed (Debian kamailio; scripts/run-tests)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        dlist = self.workdir / "dispatcher.list"
        dlist.write_text("".join(f"1 sip:{h}:{p}\n" for h, p in self.nodes))
        cfg = SHIPPED.read_text()
        cfg = re.sub(r'!LISTEN_ADDR![^!]*!g"', f'!LISTEN_ADDR!udp:127.0.0.1:{self.port}!g"', cfg)
        cfg = re.sub(r'!DISPATCHER_LIST![^!]*!g"', f'!DISPATCHER_LIST!{dlist}!g"', cfg)
        cfg = re.sub(r'!PROBE_INTERVAL![^!]*!g"', f'!PROBE_INTERVAL!{self.probe_interval}!g"', cfg)
        path = self.workdir / "kamailio.cfg"
        path.write_text(cfg)
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(path), "-Y", str(run), "-P", str(run / "pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 15
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.settimeout(0.3)
            msg = (
                f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{probe.getsockname()[1]};branch=z9hG4bKprobe\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=t\r\nTo: <sip:k@127.0.0.1>\r\n"
                "Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            while True:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"kamailio did not start:\n{self.log()}")
                probe.sendto(msg, self.address)
                try:
                    if probe.recv(4096).startswith(b"SIP/2.0 200"):
                        return
                except TimeoutError:
                    continue

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
