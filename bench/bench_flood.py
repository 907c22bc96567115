"""Flood the recorder's SIP port with junk and unauthorised INVITEs while real calls record.

What it does (loopback only, bounded in count and time, stops by itself):

1. starts a recorder (``python -m siprec_recorder serve``) whose ``allowed_sources`` is
   ``127.0.0.1/32`` only, on ephemeral ports, in a temporary folder;
2. a separate flood process sends ``--rate`` datagrams per second for ``--seconds`` seconds
   (at most ``rate * seconds`` in all) to the SIP UDP port: half well-formed SIPREC INVITEs
   from unauthorised loopback addresses (127.0.0.2-127.0.0.201, answered 403), half junk
   (RFC 4475 invalid messages, truncated INVITEs, random bytes, oversized datagrams), a
   tenth of the junk from the allowed address so that it reaches the full parser;
3. meanwhile SIPp places ``--calls`` legitimate SIPREC calls from 127.0.0.1 (all at once,
   RTP from ``audio_alaw.wav`` for the length of the flood, then BYE);
4. prints what was sent, the answers by status, how many legitimate calls ended as complete
   recordings, and the recorder's peak RSS (``VmHWM``) at start and at end.

Run: ``python bench/bench_flood.py [--seconds 20] [--rate 2000] [--calls 20] [--json out]``.
Exit status 0 when every legitimate call was recorded and the recorder stayed up.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import RecorderProcess, write_config  # noqa: E402
from tests.interop.hostile import load_vectors  # noqa: E402
from tests.interop.miarec import MEDIA_FILES, allocate_port, prepare_scenario  # noqa: E402
from tests.interop.sipclient import parse_response, siprec_invite  # noqa: E402

LEGIT_SCENARIO = ROOT / "tests" / "data" / "interop" / "sipp_legit_siprec.xml"
UNAUTHORISED_SOURCES = [f"127.0.0.{i}" for i in range(2, 202)]
MAX_MESSAGES = 200_000  # hard bound whatever the arguments say


# ---------------------------------------------------------------------- memory
def vm_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in KiB (Linux /proc)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


# ---------------------------------------------------------------------- flood
def _junk_corpus(target: tuple[str, int]) -> list[bytes]:
    rng = random.Random(4475)
    corpus: list[bytes] = []
    # only the messages RFC 4475 says to refuse: junk must never start a call, not even
    # from the allowed address (baddate.dat, for one, is an INVITE that may be accepted)
    corpus += [v.data for v in load_vectors() if v.expect == "reject"]
    invite = siprec_invite(
        call_id="junk@127.0.0.1",
        local=("127.0.0.1", 5999),
        target=target,
        transport="udp",
        aors=("tel:+32470000001", "tel:+32470999999"),
        rtp_port=30000,
    )
    for cut in (10, 50, 120, 300, 600, len(invite) - 7):
        corpus.append(invite[:cut])
    for size in (1, 16, 200, 1400):
        corpus.append(bytes(rng.randrange(256) for _ in range(size)))
    corpus.append(b"INVITE sip:x SIP/2.0\r\n" + b"X-Pad: " + b"A" * 60000 + b"\r\n\r\n")
    corpus.append(b"\r\n\r\n")
    corpus.append(b"OPTIONS sip:srs SIP/2.0\r\nVia: SIP/2.0/UDP \x00\xff\r\n\r\n")
    return corpus


def flood_worker(
    target: tuple[str, int], rate: int, seconds: float, result: dict[str, Any]
) -> None:
    """Send junk and unauthorised INVITEs at ``rate``/s for ``seconds``; count the answers."""
    total = min(int(rate * seconds), MAX_MESSAGES)
    junk = _junk_corpus(target)
    rng = random.Random(2000)
    socks: list[tuple[socket.socket, bool]] = []
    for host in UNAUTHORISED_SOURCES:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.setblocking(False)
        socks.append((s, False))
    for _ in range(4):  # junk from the allowed address too
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append((s, True))
    sent = {"invite": 0, "junk": 0, "send_errors": 0}
    answers: dict[str, int] = {}

    def drain() -> None:
        for s, _ in socks:
            while True:
                try:
                    data = s.recv(65535)
                except (BlockingIOError, OSError):
                    break
                r = parse_response(data)
                key = str(r.status) if r is not None else "other"
                answers[key] = answers.get(key, 0) + 1

    start = time.monotonic()
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    n = 0
    while n < total and time.monotonic() - start < seconds + 5:
        for _ in range(per_tick):
            if n >= total:
                break
            if n % 2 == 0:
                s, _allowed = socks[rng.randrange(len(UNAUTHORISED_SOURCES))]
                host, port = s.getsockname()
                data = siprec_invite(
                    call_id=f"flood-{n}@{host}",
                    local=(host, port),
                    target=target,
                    transport="udp",
                    aors=("tel:+32470000001", "tel:+32470999999"),
                    rtp_port=30000,
                    from_tag=f"f{n}",
                )
                kind = "invite"
            else:
                pick = rng.randrange(10)
                s, _allowed = (
                    socks[len(UNAUTHORISED_SOURCES) + pick % 4]
                    if pick == 0
                    else socks[rng.randrange(len(UNAUTHORISED_SOURCES))]
                )
                data = junk[rng.randrange(len(junk))]
                kind = "junk"
            try:
                s.sendto(data, target)
                sent[kind] += 1
            except OSError:
                sent["send_errors"] += 1
            n += 1
        drain()
        next_at = start + (n // per_tick) * tick
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        drain()
        time.sleep(0.02)
    for s, _ in socks:
        s.close()
    result.update({"sent": sent, "answers": answers, "elapsed_s": round(elapsed, 2)})


# ---------------------------------------------------------------------- legitimate calls
def run_legit_calls(
    target: tuple[str, int], calls: int, call_ms: int, workdir: Path, timeout: float
) -> subprocess.Popen[bytes]:
    scenario = workdir / "legit.xml"
    scenario.write_text(
        prepare_scenario(LEGIT_SCENARIO.read_text(encoding="iso-8859-1")), encoding="iso-8859-1"
    )
    assert MEDIA_FILES["audio_alaw.wav"].exists()
    cmd = [
        "sipp",
        f"{target[0]}:{target[1]}",
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(allocate_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(allocate_port()),
        "-t",
        "u1",
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-r",
        str(calls),
        "-rp",
        "1000",
        "-d",
        str(call_ms),
        "-cid_str",
        "legit-%u-%p@%s",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-recv_timeout",
        "20000",
        "-trace_err",
        "-error_file",
        str(workdir / "legit.errors.log"),
        "-nostdin",
    ]
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


# ---------------------------------------------------------------------- main
def run(seconds: float, rate: int, calls: int, workdir: Path) -> dict[str, Any]:
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    cfg = write_config(
        workdir, sip={"allowed_sources": ["127.0.0.1/32"]}, rtp={"inactivity_timeout": 30.0}
    )
    rec = RecorderProcess(workdir=workdir, config_path=cfg, recordings=workdir / "recordings")
    rec.start()
    report: dict[str, Any] = {"seconds": seconds, "rate": rate, "calls": calls}
    try:
        assert rec.proc is not None
        pid = rec.proc.pid
        report["memory_start_kib"] = vm_status(pid)
        target = rec.listeners["udp"]
        # the flood runs in a process of its own so that it never competes with this one
        flood = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--flood-worker",
                f"{target[0]}:{target[1]}",
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        t0 = time.monotonic()
        time.sleep(min(1.0, seconds / 5))
        call_ms = max(2000, int((seconds - 2) * 1000))
        sipp = run_legit_calls(target, calls, call_ms, workdir, timeout=seconds + 60)
        peak = 0
        while flood.poll() is None or sipp.poll() is None:
            peak = max(peak, vm_status(pid).get("VmRSS", 0))
            if time.monotonic() - t0 > seconds + 90:
                break
            time.sleep(0.2)
        for proc in (sipp, flood):
            if proc.poll() is None:
                proc.kill()
        out, err = flood.communicate()
        try:
            report["flood"] = json.loads(out)
        except json.JSONDecodeError:
            report["flood"] = {"error": err.decode(errors="replace")[-2000:]}
        report["sipp_exit"] = sipp.wait()
        report["sipp_errors"] = (
            (workdir / "legit.errors.log").read_text(errors="replace")[-2000:]
            if (workdir / "legit.errors.log").exists()
            else ""
        )
        report["recorder_alive"] = rec.proc.poll() is None
        # the legitimate calls' recordings
        deadline = time.monotonic() + 90
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = [r for r in rec.search() if str(r.get("call_id", "")).startswith("legit-")]
            if len(rows) >= calls and all(r["state"] != "recording" for r in rows):
                break
            time.sleep(1.0)
        report["legit_recorded"] = sum(1 for r in rows if r["state"] == "complete")
        report["legit_rows"] = len(rows)
        report["legit_states"] = sorted({r["state"] for r in rows})
        report["legit_duration_s"] = sorted(round(float(r.get("duration_s") or 0), 1) for r in rows)
        report["index_rows_total"] = len(rec.search())
        report["memory_end_kib"] = vm_status(pid)
        report["rss_peak_sampled_kib"] = peak
        report["tracebacks"] = rec.log().count("Traceback")
    finally:
        rec.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=2000, help="flood datagrams per second")
    ap.add_argument("--calls", type=int, default=20, help="legitimate calls during the flood")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--flood-worker", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.flood_worker:
        host, _, port = args.flood_worker.rpartition(":")
        if not host.startswith("127."):
            ap.error("loopback only")
        result: dict[str, Any] = {}
        flood_worker((host, int(port)), min(args.rate, 10_000), min(args.seconds, 120.0), result)
        print(json.dumps(result))
        return 0
    if not (0 < args.seconds <= 120 and 0 < args.rate <= 10_000 and 0 < args.calls <= 100):
        ap.error("bounded: --seconds <= 120, --rate <= 10000, --calls <= 100")
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        report = run(args.seconds, args.rate, args.calls, Path(tmp))
    flood = report.get("flood", {})
    sent = flood.get("sent", {})
    print(
        f"flood: {args.rate}/s for {args.seconds:g} s "
        f"(took {flood.get('elapsed_s')} s): sent {sent.get('invite', 0)} unauthorised INVITEs "
        f"+ {sent.get('junk', 0)} junk = {sent.get('invite', 0) + sent.get('junk', 0)}"
        f" (send errors {sent.get('send_errors', 0)})"
    )
    answers = flood.get("answers", {})
    print("answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())))
    print(
        f"legitimate calls recorded: {report['legit_recorded']}/{args.calls} "
        f"(rows {report['legit_rows']}, states {report['legit_states']}, "
        f"durations {report['legit_duration_s'][:1]}..{report['legit_duration_s'][-1:]} s)"
    )
    ms, me = report["memory_start_kib"], report["memory_end_kib"]
    print(
        f"recorder VmHWM: start {ms.get('VmHWM', 0) / 1024:.1f} MiB, "
        f"end {me.get('VmHWM', 0) / 1024:.1f} MiB (VmRSS end {me.get('VmRSS', 0) / 1024:.1f} MiB)"
    )
    print(
        f"index rows in all: {report['index_rows_total']}; recorder alive: "
        f"{report['recorder_alive']}; tracebacks in log: {report['tracebacks']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    ok = report["legit_recorded"] == args.calls and report["recorder_alive"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
