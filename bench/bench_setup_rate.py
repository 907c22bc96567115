"""SIP setup-rate benchmark (issue 7): new SIPREC calls per second accepted with zero failures.

    python bench/bench_setup_rate.py [--rates 50,100,200,300] [--seconds-per-step 5] [--hold 2]

It starts the recorder (``siprec_recorder.testing.RecorderProcess``: the shipped program on
loopback, UDP) and runs SIPp as the SRC with ``bench/sipp/siprec_uac_setup.xml``: a SIPREC
INVITE (multipart/mixed, two labelled sendonly PCMA m-lines + RFC 7865 metadata), 200, ACK,
a pause of ``--hold`` seconds without media, BYE, 200. Each step offers ``rate x
--seconds-per-step`` calls at one rate (SIPp ``-r``, ``-m``, and ``-l`` = the concurrent calls
that rate and hold time need, with slack). For each step it prints the rate asked and the
rate SIPp achieved, calls attempted / successful / failed, retransmissions (SIPp's, and the
recorder's 200s), unexpected and late messages, datagrams dropped at the recorder's SIP
socket, the INVITE -> 200 response time (median, p99, max; SIPp ``-trace_rtt``), the
recordings indexed complete and those whose finalisation failed, and the recorder's
process-tree CPU (the recorder and its finaliser workers) from the step's first INVITE until
its last recording is indexed. Between steps it waits for that (metrics, then the index via
the search CLI), so steps do not overlap. The ladder stops after the first step with a
failed call or recording (``--all-steps`` runs them all). At the end it prints the highest
rate with zero failed calls, and the highest at which every call was also recorded.

The recorder answers first and does the spool, index and MP3 work of a call afterwards, so a
short step can be accepted at a rate far above the one it can record for long: ``rec/s`` (the
recordings indexed per second of the step, wait included) is that sustained figure, and a
longer ``--seconds-per-step`` shows where the backlog starts to fail calls.

SIPp runs on the same machine (its CPU is printed): on a 2-core machine the load generator,
the recorder and anything else running share the cores, so figures are noisy; run twice when
the machine is busy. Loopback only; bounded in time (SIPp gets ``-timeout`` and is killed if
it outlives it, each step's wait is capped by ``--drain-timeout``); stops by itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from siprec_recorder.testing import RecorderProcess, process_tree_cpu, write_config

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "sipp" / "siprec_uac_setup.xml"

# Room for calls whose setup or BYE is slow: SIPp's -l and the recorder's limits use it.
CONCURRENCY_SLACK_S = 2.0
RECV_TIMEOUT_S = 10.0  # a call that waits longer for any expected response fails
RATE_REACHED = 0.95  # a step counts only if SIPp achieved this share of the rate asked


@dataclass
class SippResult:
    """What one SIPp run reports, from its statistics files."""

    returncode: int | None
    timed_out: bool
    limit: int  # SIPp's -l
    wall_s: float
    cpu_s: float
    final: dict[str, str] = field(default_factory=dict)  # last row of -trace_stat
    achieved_rate: float | None = None
    peak_calls: int = 0  # most calls in progress at once
    rtts_ms: list[float] = field(default_factory=list)  # INVITE -> 200, one per answered call
    counts: dict[str, int] = field(default_factory=dict)  # last row of -trace_counts
    unexpected: dict[str, int] = field(default_factory=dict)  # first line of each, counted

    def stat(self, name: str) -> int:
        try:
            return int(float(self.final.get(name, "0") or 0))
        except ValueError:
            return 0

    def retransmissions(self, direction: str) -> int:
        """Retransmissions SIPp sent (``"Sent"``) or received (``"Recv"``), all messages."""
        total = 0
        for name, value in self.counts.items():
            prefix, _, kind = name.rpartition("_")
            if kind == "Retrans" and f"{prefix}_{direction}" in self.counts:
                total += value
        return total

    def unexpected_count(self) -> int:
        return sum(v for k, v in self.counts.items() if k.endswith("_Unexp"))


def free_udp_port() -> int:
    """A UDP port on loopback nobody holds right now (SIPp's own SIP port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_media_base() -> int:
    """An even port P with P..P+3 free on loopback: what SIPp advertises (it sends no RTP)."""
    for _ in range(200):
        base = random.randrange(50000, 60000, 2)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free media ports for SIPp")


def own_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` alone (the recorder's main process: SIP, RTP,
    spool, index), without its finaliser workers."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the loopback UDP socket bound to ``port`` (its receive
    buffer was full: the recorder did not read fast enough), from /proc/net/udp."""
    total = 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}":
                total += int(fields[-1])
    return total


def scrape_metrics(addr: tuple[str, int], attempts: int = 6) -> dict[str, float]:
    """The recorder's Prometheus counters, by full sample name (labels included). A recorder
    at its limit may answer late: a few tries with a long timeout."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}/metrics", timeout=20) as r:
                text = r.read().decode()
            break
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_deltas(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, int]:
    return {
        k[len(prefix) :]: int(after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(prefix) and after[k] - before.get(k, 0.0)
    }


def _epoch(field_value: str) -> float:
    # SIPp writes times as "date<TAB>time<TAB>epoch.micro".
    return float(field_value.split("\t")[-1])


def read_stats(path: Path) -> tuple[dict[str, str], float | None, int]:
    """(last row, rate of call creation, most calls in progress) from SIPp's -trace_stat
    file (rows every 100 ms)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows:
        return {}, None, 0
    peak = max(int(r["CurrentCall"]) for r in rows)
    final = rows[-1]
    total = int(final["TotalCallCreated"])
    # SIPp creates call k at about k/r: measure between the first row with a call and the
    # first row with them all, so neither the start-up nor the wait for the last BYEs counts.
    first = next((r for r in rows if int(r["TotalCallCreated"]) > 0), None)
    last = next((r for r in rows if int(r["TotalCallCreated"]) >= total), None)
    rate = None
    if first is not None and last is not None and last is not first:
        span = _epoch(last["CurrentTime"]) - _epoch(first["CurrentTime"])
        if span > 0:
            rate = (total - int(first["TotalCallCreated"])) / span
    return final, rate, peak


def read_counts(path: Path) -> dict[str, int]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    out: dict[str, int] = {}
    for name, value in zip(header, last, strict=False):
        if name and name[0].isdigit():
            try:
                out[name] = int(value)
            except ValueError:
                pass
    return out


def read_rtts(path: Path) -> list[float]:
    out: list[float] = []
    with open(path, newline="") as f:
        for row in csv.reader(f, delimiter=";"):
            if len(row) >= 3 and row[2] == "invite":
                try:
                    out.append(float(row[1]))
                except ValueError:
                    pass
    return out


def read_unexpected(path: Path) -> dict[str, int]:
    """SIPp's -trace_err log: the first line of each unexpected message, counted."""
    out: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        marker = "received '"
        if "Aborting call on unexpected message" in line and marker in line:
            what = line.split(marker, 1)[1].strip()
            out[what] = out.get(what, 0) + 1
    return out


def run_sipp(
    work: Path,
    target: tuple[str, int],
    step: int,
    rate: int,
    calls: int,
    hold: float,
    trace_msg: bool = False,
) -> SippResult:
    """One SIPp run as the SRC: ``calls`` calls at ``rate`` per second, each held ``hold`` s."""
    work.mkdir(parents=True, exist_ok=True)
    scenario = work / SCENARIO.name
    shutil.copy(SCENARIO, scenario)
    limit = max(10, math.ceil(rate * (hold + CONCURRENCY_SLACK_S)))
    budget = calls / rate + hold + RECV_TIMEOUT_S + 20
    cmd = [
        "sipp",
        "-sf",
        str(scenario),
        "-key",
        "step",
        f"{step:04d}",
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(limit),
        "-d",
        str(round(hold * 1000)),
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_udp_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_media_base()),
        "-recv_timeout",
        f"{round(RECV_TIMEOUT_S * 1000)}ms",
        "-timeout",
        f"{math.ceil(budget)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        "stat.csv",
        "-fd",
        "100ms",
        "-trace_rtt",
        "-rtt_freq",
        "1",
        "-trace_counts",
        "-trace_err",
        "-error_file",
        "errors.log",
        "-trace_screen",
        "-screen_file",
        "screen.log",
        f"{target[0]}:{target[1]}",
    ]
    if trace_msg:
        cmd[-1:-1] = ["-trace_msg", "-message_file", "messages.log"]
    with open(work / "sipp.out", "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        # wait4, not Popen.wait: it also hands back SIPp's own CPU time.
        deadline = t0 + budget + 15
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    proc.send_signal(signal.SIGKILL)
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.1)
        except BaseException:  # Ctrl-C: SIPp must not outlive the benchmark
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
    result = SippResult(
        returncode=proc.returncode,
        timed_out=timed_out,
        limit=limit,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
    if (work / "stat.csv").exists():
        result.final, result.achieved_rate, result.peak_calls = read_stats(work / "stat.csv")
    for p in work.glob("*_rtt.csv"):
        result.rtts_ms += read_rtts(p)
    for p in work.glob("*_counts.csv"):
        result.counts = read_counts(p)
    if (work / "errors.log").exists():
        result.unexpected = read_unexpected(work / "errors.log")
    return result


def step_number(step: int) -> str:
    """The caller's number in the scenario for this step (``+32471[step]000001``)."""
    return f"+32471{step:04d}000001"


def wait_step_done(
    rec: RecorderProcess, step: int, timeout: float
) -> tuple[list[dict[str, object]], bool]:
    """Wait until the recorder has no session left and has finished (or failed) every
    recording it accepted; then the step's rows from the index (the search CLI).
    Returns (rows, whether it all ended before ``timeout``)."""
    assert rec.proc is not None
    deadline = time.monotonic() + timeout
    metrics = rec.listeners["metrics"]
    # The metrics endpoint is cheap to poll; the index is asked once it says all is done.
    drained = False
    while time.monotonic() < deadline:
        m = scrape_metrics(metrics)
        done = m["siprec_recordings_finished_total"] + m["siprec_recordings_failed_total"]
        if m["siprec_sessions_active"] == 0 and done >= m["siprec_sessions_accepted_total"]:
            drained = True
            break
        if rec.proc.poll() is not None:
            raise RuntimeError(f"recorder died:\n{rec.log()[-4000:]}")
        time.sleep(0.25)
    res = rec.cli("search", "--json", "--limit", "100000", "--number", step_number(step))
    return list(json.loads(res.stdout)), drained


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def parse_rates(text: str) -> list[int]:
    rates = [int(x) for x in text.replace(" ", "").split(",") if x]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates: positive integers, comma separated")
    return rates


LEGEND = (
    "got: rate SIPp achieved while creating calls",
    "retr-tx: retransmissions SIPp sent (INVITE, BYE)",
    "retr-rx: responses the recorder retransmitted (200s: the ACK or BYE was late or lost)",
    "unexp: unexpected and out-of-call messages",
    "late: responses to calls SIPp had already ended",
    "drops: datagrams the kernel dropped at the recorder's SIP socket (receive buffer full)",
    "rtd: INVITE -> 200 in ms (SIPp, 1 ms resolution)",
    "indexed: complete recordings of the step in the index",
    "recfail: recordings whose finalisation failed",
    "rec CPU: recorder process tree (recorder + finaliser workers), s, from the step's first "
    "INVITE until its last recording is indexed",
    "main: the recorder's own process in it (SIP, RTP sockets, spool, index), sys: its system time",
    "step s: wall time of the step with that wait",
    "rec/s: recordings indexed per second of it",
)


@dataclass
class Step:
    """One rate of the ladder: what SIPp saw and what the recorder did."""

    rate: int
    sipp: SippResult
    accepted: int
    indexed: int  # rows of the step in the index in state complete
    rec_failed: int  # recordings whose finalisation failed (spool kept for recovery)
    drained: bool
    rejected: dict[str, int]
    declined: dict[str, int]

    @property
    def reached(self) -> bool:
        """SIPp offered the rate (within 5 %): it holds back when ``-l`` calls are pending."""
        got = self.sipp.achieved_rate
        return got is not None and got >= RATE_REACHED * self.rate

    @property
    def clean(self) -> bool:
        """The rate was offered and SIPp counted zero failed calls."""
        r = self.sipp
        return (
            self.reached
            and not r.timed_out
            and r.stat("FailedCall(C)") == 0
            and r.stat("SuccessfulCall(C)") == r.stat("TotalCallCreated") > 0
        )

    @property
    def recorded(self) -> bool:
        """Clean, and the recorder indexed a complete recording for every call."""
        return self.clean and self.drained and self.indexed == self.sipp.stat("TotalCallCreated")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=parse_rates, default=[50, 100, 200, 300])
    ap.add_argument("--seconds-per-step", type=float, default=5.0)
    ap.add_argument("--hold", type=float, default=2.0, help="seconds between ACK and BYE")
    ap.add_argument(
        "--all-steps",
        action="store_true",
        help="run every rate even after one failed (by default the ladder stops there)",
    )
    ap.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="most seconds to wait for a step's recordings before giving up on the ladder",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (SIPp's logs)")
    ap.add_argument(
        "--trace-msg", action="store_true", help="SIPp logs every message (with --keep)"
    )
    args = ap.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    total_calls = sum(math.ceil(r * args.seconds_per_step) for r in args.rates)
    if total_calls > 50_000 or args.hold > 60:
        print("refusing: more than 50,000 calls or a hold over 60 s", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="bench-setup-rate-")
    work = Path(tmp)
    top = max(args.rates)
    # Sessions live from INVITE to shortly after BYE (plus the recorder's BYE grace): room
    # for the top rate with the same slack SIPp's -l gets, and then some.
    max_sessions = math.ceil(top * (args.hold + CONCURRENCY_SLACK_S) * 1.5) + 200
    port_min = random.randrange(20000, 30000, 2)
    port_max = min(port_min + 4 * max_sessions + 400, 64998)
    cfg = write_config(
        work,
        sip={
            "listen": ["udp:127.0.0.1:0"],
            "max_sessions": max_sessions,
            "max_sessions_per_source": max_sessions,
            "rate_limit_per_source": 0.0,
        },
        rtp={
            "port_min": port_min,
            "port_max": port_max,
            # No media is sent: the sessions must outlive the hold by the recorder's reckoning.
            "inactivity_timeout": args.hold + 30.0,
        },
        log={"level": "INFO"},
    )
    rec = RecorderProcess(workdir=work, config_path=cfg, recordings=work / "recordings")
    rec.start()
    assert rec.proc is not None
    print(
        f"recorder pid {rec.proc.pid} on udp:{rec.listeners['udp'][1]}; max_sessions "
        f"{max_sessions}, RTP ports {port_min}-{port_max}; {os.cpu_count()} CPUs; hold "
        f"{args.hold:g} s, {args.seconds_per_step:g} s per step; SIPp on the same machine"
    )
    print(
        f"{'asked':>5} {'got':>6} {'calls':>6} {'ok':>6} {'failed':>6} {'retr-tx':>7} "
        f"{'retr-rx':>7} {'unexp':>5} {'late':>5} {'drops':>5} {'rtd med':>7} {'p99':>6} "
        f"{'max':>6} {'indexed':>7} {'recfail':>7} {'rec CPU':>7} {'main':>6} {'sys':>6} "
        f"{'ms/call':>7} {'step s':>6} {'rec/s':>6} {'SIPp CPU':>8}"
    )
    steps: list[Step] = []
    try:
        for n, rate in enumerate(args.rates, start=1):
            calls = math.ceil(rate * args.seconds_per_step)
            m0 = scrape_metrics(rec.listeners["metrics"])
            cpu0, _ = process_tree_cpu(rec.proc.pid)
            user0, sys0 = own_cpu(rec.proc.pid)
            drops0 = udp_drops(rec.listeners["udp"][1])
            t0 = time.monotonic()
            res = run_sipp(
                work / f"step{n}-{rate}cps",
                rec.listeners["udp"],
                n,
                rate,
                calls,
                args.hold,
                trace_msg=args.trace_msg,
            )
            rows, drained = wait_step_done(rec, n, timeout=args.drain_timeout)
            cpu1, _ = process_tree_cpu(rec.proc.pid)
            user1, sys1 = own_cpu(rec.proc.pid)
            drops = udp_drops(rec.listeners["udp"][1]) - drops0
            wall = time.monotonic() - t0
            m1 = scrape_metrics(rec.listeners["metrics"])
            step = Step(
                rate=rate,
                sipp=res,
                accepted=int(
                    m1["siprec_sessions_accepted_total"] - m0["siprec_sessions_accepted_total"]
                ),
                indexed=sum(1 for r in rows if r["state"] == "complete"),
                rec_failed=int(
                    m1["siprec_recordings_failed_total"] - m0["siprec_recordings_failed_total"]
                ),
                drained=drained,
                rejected=metric_deltas(m0, m1, "siprec_responses_rejected_total"),
                declined=metric_deltas(m0, m1, "siprec_declined_total"),
            )
            steps.append(step)

            rec_cpu = cpu1 - cpu0
            created = res.stat("TotalCallCreated")
            rtts = res.rtts_ms
            med = f"{statistics.median(rtts):.0f}" if rtts else "-"
            p99 = f"{percentile(rtts, 0.99):.0f}" if rtts else "-"
            mx = f"{max(rtts):.0f}" if rtts else "-"
            got = f"{res.achieved_rate:.1f}" if res.achieved_rate else "-"
            print(
                f"{rate:>5} {got:>6} {created:>6} {res.stat('SuccessfulCall(C)'):>6} "
                f"{res.stat('FailedCall(C)'):>6} "
                f"{res.retransmissions('Sent'):>7} {res.retransmissions('Recv'):>7} "
                f"{res.unexpected_count() + res.stat('OutOfCallMsgs(C)'):>5} "
                f"{res.stat('DeadCallMsgs(C)'):>5} {drops:>5} {med:>7} {p99:>6} {mx:>6} "
                f"{step.indexed:>7} {step.rec_failed:>7} "
                f"{rec_cpu:>7.2f} {user1 - user0 + sys1 - sys0:>6.2f} {sys1 - sys0:>6.2f} "
                f"{1000 * rec_cpu / max(1, created):>7.2f} {wall:>6.1f} "
                f"{step.indexed / wall:>6.1f} {res.cpu_s:>8.2f}"
            )
            if not step.recorded:
                print("      " + "; ".join(explain(step)))
            if not drained:
                print(f"      recordings still unfinished after {args.drain_timeout:g} s: stop")
                break
            if not step.recorded and not args.all_steps and n < len(args.rates):
                print("      the ladder stops here (--all-steps runs every rate)")
                break
    finally:
        rec.stop()
        errors = [ln for ln in rec.log().splitlines() if " ERROR " in ln or " CRITICAL " in ln]
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("; ".join(LEGEND))
    if errors:
        kinds: dict[str, int] = {}
        for ln in errors:
            kind = ln.split(" ERROR ", 1)[-1]
            kind = " ".join(w for w in kind.split() if not any(c.isdigit() for c in w))
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"recorder log: {len(errors)} ERROR line(s):")
        for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {count} x {kind}")
    if args.keep:
        print(f"work folder kept: {tmp}")

    def best(chosen: list[Step]) -> str:
        if not chosen:
            return "none"
        top = max(chosen, key=lambda s: s.rate)
        return f"{top.rate} calls/s (SIPp achieved {top.sipp.achieved_rate:.1f})"

    print(
        f"highest rate with zero failed calls: {best([s for s in steps if s.clean])}; "
        f"with every call also recorded and indexed: {best([s for s in steps if s.recorded])}"
    )
    return 0 if any(s.clean for s in steps) else 1


def explain(step: Step) -> list[str]:
    """Why a step is not clean, from SIPp's counters and the recorder's."""
    r = step.sipp
    why = [f"SIPp exit {r.returncode}" + (" (killed)" if r.timed_out else "")]
    if not step.reached:
        why.append(
            f"rate not reached: SIPp held back at its limit of {r.limit} calls in progress "
            "(answers or BYE responses too slow)"
            if r.peak_calls >= r.limit
            else f"rate not reached (peak {r.peak_calls} calls in progress, limit {r.limit})"
        )
    for what in (
        "FailedMaxUDPRetrans(C)",
        "FailedTimeoutOnRecv(C)",
        "FailedUnexpectedMessage(C)",
        "FailedCannotSendMessage(C)",
        "FailedCallRejected(C)",
    ):
        if r.stat(what):
            why.append(f"{what[6:-3]} {r.stat(what)}")
    why.append(
        f"recorder accepted {step.accepted}, indexed complete {step.indexed}, "
        f"finalisation failed {step.rec_failed}"
    )
    if step.rejected:
        why.append(f"rejected {step.rejected}")
    if step.declined:
        why.append(f"declined {step.declined}")
    for line, count in sorted(r.unexpected.items(), key=lambda kv: -kv[1])[:2]:
        why.append(f"{count} x unexpected {line!r}")
    return why


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
