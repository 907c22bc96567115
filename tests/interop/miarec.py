"""Run the miarec SIPp SIPREC scenarios (tests/data/interop/miarec_sipp) against an SRS.

Theory of operation
-------------------
The 87 scenario files are SRC simulators written for a MiaRec recorder (see their README).
Each is *prepared* for SIPp 3.6.1 in a private work directory:

* media files are pointed at this checkout (``audio_alaw.wav``; the two-hour
  ``audio_alaw_2h.wav`` that the repository never shipped is the same audio file; the
  ``metaswitch_*`` pcaps are the ``miarec_*.pcap`` files in ``pcaps/`` and, for 11a,
  ``tests/data/interop/pcap``);
* ``pause`` and ``timewait`` lengths are scaled down (:func:`scale_pause`), so that the
  whole set runs in about a minute while every call still carries media;
* the CSV injection files (``callee.csv``, ``tenant-users.csv``) are copied next to the
  scenario and passed with ``-inf``, as ``run_scenario.py`` and the README do;
* every instance gets its own SIP port, media port and Call-ID prefix (``-cid_str``), so
  that many run at once against one recorder and each call is found again by Call-ID.

A *job* is what the README runs together: one file, a 3PCC pair (``-3pcc``: the
``recvCmd`` side first, then the ``sendCmd`` side, as ``run_scenario.py`` does) or an
extended-3PCC master with its slaves (``-slave_cfg``; slaves first). Transport is TCP
(``-t t1``), as in the README and ``run_scenario.py``, or UDP (``-t u1``).

After a job, what SIPp really sent is read back from its message log (``-trace_msg``):
for each Call-ID, the rs-metadata bodies (INVITE, re-INVITE, UPDATE) in order, merged with
:meth:`RecordingMetadata.merge`, are the expectation for that call's recording.

SIPp failures are told apart by running the same job against
:class:`~tests.interop.permissive_uas.PermissiveUas` (the *baseline*): a part that fails
there too fails because of the scenario or SIPp, not because of the recorder.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "interop"
MIAREC = DATA / "miarec_sipp"
SCENARIOS = MIAREC / "scenarios"
PCAP_DIR = DATA / "pcap"
PCAPS = ROOT / "pcaps"  # the captures the replay tests share

#: Media file names used in the scenarios -> the file in this checkout.
MEDIA_FILES: dict[str, Path] = {
    "audio_alaw.wav": MIAREC / "audio_alaw.wav",
    "audio_alaw_2h.wav": MIAREC / "audio_alaw.wav",
    "09a_2833_dtmf.pcap": PCAPS / "miarec_09a_2833_dtmf.pcap",
    "10a_g722.pcap": PCAPS / "miarec_10a_g722.pcap",
    "11a_g721.pcap": PCAP_DIR / "miarec_11a_g721.pcap",
    "12a_g729.pcap": PCAPS / "miarec_12a_g729.pcap",
}
CSV_FILES = ("callee.csv", "tenant-users.csv")

PAUSE_FACTOR = 0.15
PAUSE_CAP_MS = 3000
TIMEWAIT_CAP_MS = 500

# (job name, mode, [(scenario path relative to SCENARIOS, role)]) in start order; every
# other scenario file is a job of its own. Roles: "b" (3PCC recvCmd side, started first),
# "a" (3PCC sendCmd side), "slaveN", "master".
_MULTI: list[tuple[str, str, list[tuple[str, str]]]] = (
    [
        (f"{stem}", "3pcc", [(f"{stem}_2.xml", "b"), (f"{stem}_1.xml", "a")])
        for stem in (
            "01a_3way_call_initiator_recorded",
            "04c_blind_call_transfer",
            "mlhg_blind_call_transfer",
            "rmtop_blind_call_transfer",
        )
    ]
    + [
        (f"{d}/{stem}", "3pcc", [(f"{d}/{stem}_callB.xml", "b"), (f"{d}/{stem}_callA.xml", "a")])
        for d, stem in (
            ("metaswitch_01_3way_call", "3pcc_01a_3way_call"),
            ("metaswitch_04_blind_xfer", "3pcc_04c_blind_xfer"),
            ("metaswitch_07_call_waiting", "3pcc_07a_call_waiting"),
            ("metaswitch_16_basic_call_recording", "3pcc_16c_basic_call"),
            ("metaswitch_19_shared_line", "3pcc_19a_shared_line"),
            ("metaswitch_19_shared_line", "3pcc_19b_shared_line"),
        )
    ]
    + [
        (
            "01a_3way_call_initiator_recorded_ext",
            "ext",
            [
                ("01a_3way_call_initiator_recorded_ext_2.xml", "slave1"),
                ("01a_3way_call_initiator_recorded_ext_1.xml", "master"),
            ],
        ),
        (
            "cisco_bib_call",
            "ext",
            [("cisco_bib_call_slave1.xml", "slave1"), ("cisco_bib_call_master.xml", "master")],
        ),
    ]
    + [
        (
            f"{d}/{stem}",
            "ext",
            [
                (f"{d}/{stem}_slave2.xml", "slave2"),
                (f"{d}/{stem}_slave1.xml", "slave1"),
                (f"{d}/{stem}_master.xml", "master"),
            ],
        )
        for d, stem in (
            ("metaswitch_02_attended_xfer", "3pcc_02b_attended_xfer"),
            ("metaswitch_05_call_park", "3pcc_05a_call_park"),
        )
    ]
)


@dataclass(frozen=True, slots=True)
class Part:
    """One SIPp instance of a job."""

    scenario: str  # relative to SCENARIOS
    role: str  # "single", "a", "b", "master", "slaveN"


@dataclass(frozen=True, slots=True)
class Job:
    """What the README runs together."""

    name: str
    mode: str  # "single", "3pcc", "ext"
    parts: tuple[Part, ...]

    @property
    def tag(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-").lower()


def all_jobs() -> list[Job]:
    """Every scenario file, grouped into jobs; each file appears in exactly one job."""
    jobs: list[Job] = []
    grouped: set[str] = set()
    for name, mode, parts in _MULTI:
        jobs.append(Job(name, mode, tuple(Part(p, r) for p, r in parts)))
        grouped.update(p for p, _ in parts)
    for path in sorted(SCENARIOS.rglob("*.xml")):
        rel = path.relative_to(SCENARIOS).as_posix()
        if rel not in grouped:
            jobs.append(Job(rel.removesuffix(".xml"), "single", (Part(rel, "single"),)))
    return sorted(jobs, key=lambda j: j.name)


# ---------------------------------------------------------------------- preparation
def scale_pause(ms: int) -> int:
    """Shorten a scenario pause: short ones stay, long ones shrink to 15 % (at most 3 s)."""
    if ms <= 100:
        return ms
    return max(100, min(int(ms * PAUSE_FACTOR), PAUSE_CAP_MS))


_PAUSE_RE = re.compile(r'<pause\s+milliseconds="(\d+)"\s*/>')
_DIST_PAUSE_RE = re.compile(r'<pause\s+distribution="normal"\s+mean="(\d+)"\s+stdev="\d+"\s*/>')
_TIMEWAIT_RE = re.compile(r'<timewait\s+milliseconds="(\d+)"\s*/>')
_MEDIA_RE = re.compile(r'(rtp_stream|play_pcap_audio)="([^",]+)')
_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)


def prepare_scenario(text: str) -> str:
    """The scenario text made runnable here (media paths, shorter pauses)."""

    def media(m: re.Match[str]) -> str:
        target = MEDIA_FILES.get(m.group(2))
        return f'{m.group(1)}="{target}' if target is not None else m.group(0)

    text = _MEDIA_RE.sub(media, text)
    text = _PAUSE_RE.sub(lambda m: f'<pause milliseconds="{scale_pause(int(m.group(1)))}"/>', text)
    text = _DIST_PAUSE_RE.sub(
        lambda m: f'<pause milliseconds="{scale_pause(int(m.group(1)))}"/>', text
    )
    text = _TIMEWAIT_RE.sub(
        lambda m: f'<timewait milliseconds="{min(int(m.group(1)), TIMEWAIT_CAP_MS)}"/>', text
    )
    return text


def streams_media(text: str) -> bool:
    """True when the scenario plays audio at the recorder (outside XML comments)."""
    for kind, value in _MEDIA_RE.findall(_COMMENT_RE.sub("", text)):
        if kind == "play_pcap_audio" or value not in ("pause", "resume"):
            return True
    return False


def uses_csv(text: str) -> bool:
    return "[field" in _COMMENT_RE.sub("", text)


# ---------------------------------------------------------------------- ports
_port_lock = threading.Lock()
_ports_used: set[int] = set()


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def allocate_port(lo: int = 21000, hi: int = 29996, step: int = 4) -> int:
    """A port (and the three above it) free for UDP and TCP on loopback, never handed out twice."""
    with _port_lock:
        start = lo + (os.getpid() * 52) % (hi - lo)
        start -= start % step
        span = (hi - lo) // step
        for i in range(span):
            port = lo + ((start - lo) // step + i) % span * step
            if port in _ports_used:
                continue
            if all(_bindable(port + k) for k in range(step)):
                _ports_used.update(range(port, port + step))
                return port
    raise RuntimeError("no free port block for SIPp")


# ---------------------------------------------------------------------- results
@dataclass(slots=True)
class SentMessage:
    """A request SIPp sent, read back from its message log."""

    method: str
    call_id: str
    cseq: str
    content_type: str
    body: bytes
    from_: str = ""
    to: str = ""
    time: float = 0.0  # epoch seconds of the log entry (SIPp's clock = ours)


@dataclass(slots=True)
class PartResult:
    part: Part
    returncode: int | None
    elapsed: float
    stdout: str = ""
    stderr: str = ""
    errors: str = ""
    sent: list[SentMessage] = field(default_factory=list)
    received_status: dict[str, list[int]] = field(default_factory=dict)  # call-id -> statuses
    answers: list[SentMessage] = field(default_factory=list)  # 2xx received (method = "2xx")
    media: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        if self.timed_out:
            return "timeout"
        if self.returncode == 0:
            return "ok"
        events = [
            line.split(": ", 1)[-1]
            for line in self.errors.splitlines()
            if re.match(r"^\d{4}-\d\d-\d\d\s", line)
        ]
        if not events:
            events = [line for line in self.stderr.splitlines() if line.strip()][-1:]
        first = events[0].strip() if events else ""
        return f"exit {self.returncode}" + (f": {first[:200]}" if first else "")


@dataclass(slots=True)
class CallExpectation:
    """What one Call-ID sent, and so what its recording must show."""

    call_id: str
    part: Part
    metadata_bodies: list[bytes]
    answered: bool
    media: bool
    from_: str = ""
    to: str = ""
    span_s: float | None = None  # from the 2xx to the first INVITE until the BYE was sent

    def metadata(self) -> Any:
        """The merged RecordingMetadata (or the MetadataError of a body that does not parse)."""
        from siprec_recorder.siprec.metadata import RecordingMetadata

        merged = None
        for body in self.metadata_bodies:
            doc = RecordingMetadata.parse(body)
            merged = doc if merged is None else merged.merge(doc)
        return merged

    def expected_numbers(self) -> set[str]:
        """Numbers of the merged metadata's participants; From/To when no metadata was sent."""
        from siprec_recorder.phone import normalize_number

        md = self.metadata()
        if md is None:
            found = (normalize_number(_uri(v)) for v in (self.from_, self.to))
            return {n for n in found if n}
        return {p.number for p in md.participants if p.number}

    def expected_left_numbers(self) -> set[str]:
        """Numbers that must show as having left: a disassociate-time in the metadata, or
        a number that a later *complete* document no longer lists (by number, since
        BroadWorks gives the same party a new participant_id in every document)."""
        from siprec_recorder.siprec.metadata import RecordingMetadata

        md = self.metadata()
        if md is None:
            return set()
        left = {p.number for p in md.participants if p.number and p.disassociate_time}
        if len(self.metadata_bodies) > 1:
            last = RecordingMetadata.parse(self.metadata_bodies[-1])
            if last.datamode == "complete":
                still = {p.number for p in last.participants if p.number}
                left |= {p.number for p in md.participants if p.number and p.number not in still}
        return left

    @property
    def expectation_source(self) -> str:
        return "metadata" if self.metadata_bodies else "From/To (no metadata sent)"


@dataclass(slots=True)
class JobResult:
    job: Job
    target: str  # "recorder" or "baseline"
    parts: list[PartResult]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    def calls(self) -> list[CallExpectation]:
        out: list[CallExpectation] = []
        for pr in self.parts:
            bodies: dict[str, list[bytes]] = {}
            first: dict[str, SentMessage] = {}
            order: list[str] = []
            seen: set[tuple[str, str]] = set()
            for msg in pr.sent:
                if msg.method not in ("INVITE", "UPDATE"):
                    continue
                if (msg.call_id, msg.cseq) in seen:  # retransmission
                    continue
                seen.add((msg.call_id, msg.cseq))
                if msg.call_id not in bodies:
                    bodies[msg.call_id] = []
                    first[msg.call_id] = msg
                    order.append(msg.call_id)
                md = metadata_part(msg.content_type, msg.body)
                if md is not None:
                    bodies[msg.call_id].append(md)
            first_ok: dict[str, float] = {}
            for a in pr.answers:
                if a.cseq.strip().upper().endswith("INVITE"):
                    first_ok.setdefault(a.call_id, a.time)
            bye_at: dict[str, float] = {}
            for msg in pr.sent:
                if msg.method == "BYE":
                    bye_at.setdefault(msg.call_id, msg.time)
            for cid in order:
                answered = 200 in pr.received_status.get(cid, [])
                span = None
                if cid in first_ok and cid in bye_at and first_ok[cid] and bye_at[cid]:
                    span = round(bye_at[cid] - first_ok[cid], 3)
                out.append(
                    CallExpectation(
                        cid,
                        pr.part,
                        bodies[cid],
                        answered,
                        pr.media,
                        first[cid].from_,
                        first[cid].to,
                        span,
                    )
                )
        return out


# ---------------------------------------------------------------------- message logs
_LOG_SPLIT_RE = re.compile(r"^-{20,} .*$", re.M)
_LOG_STAMP_RE = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)", re.M)


def _chunks(text: str) -> list[tuple[float, str]]:
    """(local time as epoch seconds, entry text) of each message-log entry."""
    out: list[tuple[float, str]] = []
    marks = list(_LOG_STAMP_RE.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        try:
            ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            ts = 0.0
        out.append((ts, text[m.end() : end]))
    return out


_LOG_HEAD_RE = re.compile(r"^\s*(UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*:\s*\n", re.I)


def parse_message_log(text: str) -> tuple[list[SentMessage], dict[str, list[int]]]:
    """Requests SIPp sent and the statuses it received, per Call-ID, from ``-trace_msg``."""
    sent: list[SentMessage] = []
    statuses: dict[str, list[int]] = {}
    for stamp, chunk in _chunks(text):
        m = _LOG_HEAD_RE.match(chunk.lstrip("\n"))
        if not m:
            continue
        raw = chunk.lstrip("\n")[m.end() :]
        raw = raw.lstrip("\r\n")
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        if not lines or not lines[0].strip():
            continue
        hdr: dict[str, str] = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                hdr.setdefault(k.strip().lower(), v.strip())
        call_id = hdr.get("call-id", hdr.get("i", ""))
        if m.group(2).lower() == "received":
            start = lines[0].split()
            if len(start) >= 2 and start[0].startswith("SIP/") and start[1].isdigit():
                statuses.setdefault(call_id, []).append(int(start[1]))
            continue
        method = lines[0].split(" ", 1)[0]
        if method.startswith("SIP/"):
            continue
        sent.append(
            SentMessage(
                method=method,
                call_id=call_id,
                cseq=hdr.get("cseq", ""),
                content_type=hdr.get("content-type", hdr.get("c", "")),
                body=body.encode("utf-8", "surrogateescape"),
                from_=hdr.get("from", hdr.get("f", "")),
                to=hdr.get("to", hdr.get("t", "")),
                time=stamp,
            )
        )
    return sent, statuses


def parse_received_2xx(text: str) -> list[SentMessage]:
    """The 2xx responses SIPp received (``method`` holds the status), from ``-trace_msg``."""
    out: list[SentMessage] = []
    for stamp, chunk in _chunks(text):
        m = _LOG_HEAD_RE.match(chunk.lstrip("\n"))
        if not m or m.group(2).lower() != "received":
            continue
        raw = chunk.lstrip("\n")[m.end() :].lstrip("\r\n")
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        start = lines[0].split() if lines else []
        if len(start) < 2 or not start[0].startswith("SIP/") or not start[1].startswith("2"):
            continue
        hdr: dict[str, str] = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                hdr.setdefault(k.strip().lower(), v.strip())
        out.append(
            SentMessage(
                method=start[1],
                call_id=hdr.get("call-id", hdr.get("i", "")),
                cseq=hdr.get("cseq", ""),
                content_type=hdr.get("content-type", hdr.get("c", "")),
                body=body.encode("utf-8", "surrogateescape"),
                time=stamp,
            )
        )
    return out


def sdp_part(content_type: str, body: bytes) -> bytes | None:
    """The application/sdp part of a body (an independent MIME reading)."""
    ct = content_type.lower()
    if ct.startswith("application/sdp"):
        return body
    if not ct.startswith("multipart/"):
        return None
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    if not msg.is_multipart():
        return None
    for part in msg.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        if (part.get_content_type() or "").lower() == "application/sdp":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return None


def _media_lines(sdp: bytes) -> list[tuple[int, str | None, str]]:
    """(port, label, direction) of every m-line; direction inherits the session's."""
    session_dir = "sendrecv"
    media: list[list[Any]] = []
    for line in sdp.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if line and (len(line) < 2 or line[1] != "=") and media:
            break  # trailing garbage ends the document, as the recorder's SDP parser reads it
        if line.startswith("m="):
            parts = line[2:].split()
            port = (
                int(parts[1].split("/")[0])
                if len(parts) > 1 and parts[1].split("/")[0].isdigit()
                else -1
            )
            media.append([port, None, None])
        elif line.startswith("a="):
            attr = line[2:]
            if attr in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if media:
                    media[-1][2] = attr
                else:
                    session_dir = attr
            elif attr.startswith("label:") and media:
                media[-1][1] = attr[6:].strip()
    return [(m[0], m[1], m[2] or session_dir) for m in media]


_ANSWER_DIRECTION = {
    "sendonly": ("recvonly",),
    "sendrecv": ("recvonly",),
    "recvonly": ("inactive",),
    "inactive": ("inactive", "recvonly"),
}


def check_sdp_answers(sent: list[SentMessage], answers: list[SentMessage]) -> list[str]:
    """Every 2xx to an INVITE/UPDATE that carried an offer answers every m-line, echoes
    every label and is recvonly (inactive for an inactive or recvonly offer):
    RFC 3264 section 6, RFC 7866 section 8.1.1."""
    offers: dict[tuple[str, str], bytes] = {}
    for msg in sent:
        if msg.method in ("INVITE", "UPDATE"):
            sdp = sdp_part(msg.content_type, msg.body)
            if sdp is not None:
                offers.setdefault((msg.call_id, msg.cseq.strip()), sdp)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for ans in answers:
        key = (ans.call_id, ans.cseq.strip())
        if key in seen or key not in offers:
            continue
        seen.add(key)
        offered = _media_lines(offers[key])
        sdp = sdp_part(ans.content_type, ans.body)
        where = f"{ans.cseq.strip()}"
        if sdp is None:
            problems.append(f"{where}: 2xx without an SDP answer")
            continue
        answered = _media_lines(sdp)
        if len(answered) != len(offered):
            problems.append(f"{where}: {len(offered)} m-lines offered, {len(answered)} answered")
            continue
        for i, ((_op, olabel, odir), (aport, alabel, adir)) in enumerate(
            zip(offered, answered, strict=True)
        ):
            if olabel is not None and alabel != olabel:
                problems.append(f"{where}: m-line {i} label {olabel!r} answered as {alabel!r}")
            if aport != 0 and adir not in _ANSWER_DIRECTION.get(odir, ("recvonly",)):
                problems.append(f"{where}: m-line {i} offered {odir}, answered {adir}")
    return problems


def metadata_part(content_type: str, body: bytes) -> bytes | None:
    """The rs-metadata body part of a request body (an independent MIME reading)."""
    ct = content_type.lower()
    if "rs-metadata" in ct:
        return body
    if not ct.startswith("multipart/"):
        return None
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    if not msg.is_multipart():
        return None
    for part in msg.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        if "rs-metadata" in (part.get_content_type() or "").lower():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return None


# ---------------------------------------------------------------------- running
@dataclass(slots=True)
class RunSettings:
    transport: str = "tcp"  # "tcp" (-t t1, as in the README) or "udp" (-t u1)
    part_timeout: float = 45.0  # SIPp -timeout, per instance
    recv_timeout_ms: int = 15000
    start_gap: float = 0.4  # between the parts of a 3PCC job


def sipp_command(
    part: Part,
    scenario_file: Path,
    target: tuple[str, int],
    *,
    tag: str,
    settings: RunSettings,
    extra: Iterable[str] = (),
    csv: bool = False,
) -> tuple[list[str], dict[str, Path]]:
    sip_port = allocate_port()
    media_port = allocate_port()
    workdir = scenario_file.parent
    logs = {
        "messages": workdir / f"{scenario_file.stem}.messages.log",
        "errors": workdir / f"{scenario_file.stem}.errors.log",
    }
    cmd = [
        "sipp",
        f"{target[0]}:{target[1]}",
        "-sf",
        str(scenario_file),
        "-i",
        "127.0.0.1",
        "-p",
        str(sip_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-m",
        "1",
        "-l",
        "1",
        "-t",
        "t1" if settings.transport == "tcp" else "u1",
        "-cid_str",
        f"{tag}-{part.role}-%u-%p@%s",
        "-timeout",
        f"{int(settings.part_timeout)}s",
        "-timeout_error",
        "-recv_timeout",
        str(settings.recv_timeout_ms),
        "-trace_msg",
        "-message_file",
        str(logs["messages"]),
        "-trace_err",
        "-error_file",
        str(logs["errors"]),
        "-nostdin",
    ]
    if csv:
        for name in CSV_FILES:
            cmd += ["-inf", name]
    cmd += list(extra)
    return cmd, logs


def run_job(
    job: Job,
    target: tuple[str, int],
    workroot: Path,
    *,
    label: str = "recorder",
    settings: RunSettings | None = None,
) -> JobResult:
    """Run one job against ``target`` (host, port); never takes longer than its timeouts."""
    settings = settings or RunSettings()
    workdir = workroot / label / job.tag
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in CSV_FILES:
        shutil.copy(SCENARIOS / name, workdir / name)
    tag = f"{label[:3]}-{job.tag}"[:60]

    extra_by_part: dict[Part, list[str]] = {p: [] for p in job.parts}
    if job.mode == "3pcc":
        twin = allocate_port()
        for p in job.parts:
            extra_by_part[p] = ["-3pcc", f"127.0.0.1:{twin}"]
    elif job.mode == "ext":
        cfg = workdir / "slaves.cfg"
        cfg.write_text("".join(f"{p.role};127.0.0.1:{allocate_port()}\n" for p in job.parts))
        for p in job.parts:
            flag = "-master" if p.role == "master" else "-slave"
            extra_by_part[p] = ["-slave_cfg", str(cfg), flag, p.role]

    procs: list[tuple[Part, subprocess.Popen[bytes], dict[str, Path], float, bool]] = []
    for i, part in enumerate(job.parts):
        text = (SCENARIOS / part.scenario).read_text(encoding="iso-8859-1")
        prepared = workdir / f"{i}_{Path(part.scenario).name}"
        prepared.write_text(prepare_scenario(text), encoding="iso-8859-1")
        cmd, logs = sipp_command(
            part,
            prepared,
            target,
            tag=tag,
            settings=settings,
            extra=extra_by_part[part],
            csv=uses_csv(text),
        )
        if i:
            time.sleep(settings.start_gap)
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append((part, proc, logs, time.monotonic(), streams_media(text)))

    results: list[PartResult] = []
    for part, proc, logs, started, media in procs:
        timed_out = False
        try:
            out, err = proc.communicate(timeout=settings.part_timeout + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            timed_out = True
        pr = PartResult(
            part=part,
            returncode=proc.returncode,
            elapsed=time.monotonic() - started,
            stdout=out.decode("utf-8", "replace")[-4000:],
            stderr=err.decode("utf-8", "replace")[-4000:],
            errors=_read(logs["errors"])[-4000:],
            media=media,
            timed_out=timed_out,
        )
        text = _read(logs["messages"])
        pr.sent, pr.received_status = parse_message_log(text)
        pr.answers = parse_received_2xx(text)
        results.append(pr)
    return JobResult(job, label, results)


def _uri(name_addr: str) -> str:
    m = re.search(r"<([^>]*)>?", name_addr)
    return (m.group(1) if m else name_addr).split(";", 1)[0].strip()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return ""


def run_jobs(
    jobs: Iterable[Job],
    target: tuple[str, int],
    workroot: Path,
    *,
    label: str = "recorder",
    parallel: int = 12,
    settings: RunSettings | None = None,
    progress: Callable[[JobResult], None] | None = None,
) -> dict[str, JobResult]:
    """Run jobs ``parallel`` at a time (a job's own parts run together, as the README does)."""
    results: dict[str, JobResult] = {}

    def one(job: Job) -> JobResult:
        res = run_job(job, target, workroot, label=label, settings=settings)
        if progress is not None:
            progress(res)
        return res

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for res in pool.map(one, list(jobs)):
            results[res.job.name] = res
    return results


# ---------------------------------------------------------------------- checking
FINISHED_STATES = ("complete", "completed", "finished")
#: A recording may be shorter than answer-to-BYE by this much (first packet ~20 ms after the
#: 200 OK, the MP3 frame grid); anything more is silence the timeline dropped.
DURATION_TOLERANCE_S = 0.5

#: Scenario files whose SIPp run fails because of what the file itself sends (checked by
#: hand against the message logs); such a failure is not held against the recorder. The
#: recording check still applies to every call the recorder answered.
SCENARIO_DEFECTS: dict[str, str] = {
    "broadworks_pause_resume.xml": (
        "its ACKs carry another CSeq number than their INVITE (832544241 vs 604674513) and "
        "its BYE says 'CSeq: 604674516 INVITE': a start-line/CSeq method mismatch that "
        "RFC 4475 3.1.2.17 says to reject with 400 (the recorder does, so SIPp aborts on "
        "that 400; the ACKs are accepted liberally and the call is recorded)"
    ),
    "oracle_sbc_basic_calls_outbound.xml": (
        "its application/sdp part contains a stray '--metaswitch-boundary' delimiter, "
        "part headers and a second SDP; the recorder keeps the SDP up to the garbage and "
        "records the call"
    ),
    "cisco_bib_call_master.xml": (
        "the slave's sendCmd races the master's BYE (both pause 10 s): SIPp reports an "
        "unexpected twin command; fails against the permissive UAS too"
    ),
}


def judge(
    result: JobResult, baseline: JobResult | None, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One verdict per scenario file of the job: SIPp outcome against the recorder and
    against the baseline, and each call's recording compared with what the call sent.

    A verdict's ``problems`` lists what is the recorder's fault; a SIPp failure that also
    happens against the permissive baseline is the scenario's (``scenario_fault``).
    """
    by_call: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_call.setdefault(str(row.get("call_id")), []).append(row)
    base_parts = {pr.part: pr for pr in baseline.parts} if baseline else {}
    calls_by_part: dict[Part, list[CallExpectation]] = {}
    for call in result.calls():
        calls_by_part.setdefault(call.part, []).append(call)
    verdicts: list[dict[str, Any]] = []
    for pr in result.parts:
        base = base_parts.get(pr.part)
        problems: list[str] = []
        scenario_fault = ""
        if not pr.ok:
            if pr.part.scenario in SCENARIO_DEFECTS:
                scenario_fault = SCENARIO_DEFECTS[pr.part.scenario]
            elif base is not None and not base.ok:
                scenario_fault = f"fails against the permissive UAS too: {base.summary()}"
            else:
                problems.append(f"SIPp: {pr.summary()}")
        sdp_problems = check_sdp_answers(pr.sent, pr.answers)
        problems += [f"SDP answer {p}" for p in sdp_problems]
        calls: list[dict[str, Any]] = []
        for call in calls_by_part.get(pr.part, []):
            entry: dict[str, Any] = {
                "call_id": call.call_id,
                "answered": call.answered,
                "media": call.media,
                "expected_from": call.expectation_source,
                "metadata_bodies": len(call.metadata_bodies),
            }
            try:
                expected = call.expected_numbers()
            except Exception as exc:  # the scenario's own metadata does not parse
                entry["problem"] = f"metadata sent does not parse here: {exc}"
                calls.append(entry)
                problems.append(f"{call.call_id}: {entry['problem']}")
                continue
            entry["expected"] = sorted(expected)
            found = by_call.get(call.call_id, [])
            entry["recordings"] = len(found)
            if found:
                row = found[-1]
                entry["state"] = row.get("state")
                entry["observed"] = sorted(
                    {str(p.get("number")) for p in row.get("participants", []) if p.get("number")}
                )
                entry["duration_s"] = row.get("duration_s")
                entry["call_span_s"] = call.span_s
                entry["participants"] = [
                    {k: p.get(k) for k in ("number", "aor", "joined_at", "left_at")}
                    for p in row.get("participants", [])
                ]
                entry["expected_left"] = sorted(call.expected_left_numbers())
                entry["observed_left"] = sorted(
                    {
                        str(p.get("number"))
                        for p in row.get("participants", [])
                        if p.get("number") and p.get("left_at")
                    }
                )
            if call.answered and call.media:
                if len(found) != 1:
                    entry["problem"] = f"expected one recording, found {len(found)}"
                elif entry.get("state") not in FINISHED_STATES:
                    entry["problem"] = f"recording state {entry.get('state')!r}"
                elif set(entry["observed"]) != expected:
                    entry["problem"] = (
                        f"participants {entry['observed']} != {call.expectation_source} "
                        f"{entry['expected']}"
                    )
                elif (
                    call.span_s is not None
                    and entry.get("duration_s") is not None
                    and float(entry["duration_s"]) < call.span_s - DURATION_TOLERANCE_S
                ):
                    entry["problem"] = (
                        f"recording lasts {entry['duration_s']} s, the call {call.span_s} s "
                        "(answer to BYE): the timeline lost the end of the call"
                    )
                elif not set(entry["expected_left"]) <= set(entry["observed_left"]):
                    entry["problem"] = (
                        f"participants that left {entry['expected_left']} but recorded as "
                        f"having left: {entry['observed_left']}"
                    )
            if entry.get("problem"):
                problems.append(f"{call.call_id}: {entry['problem']}")
            calls.append(entry)
        verdicts.append(
            {
                "scenario": pr.part.scenario,
                "job": result.job.name,
                "mode": result.job.mode,
                "role": pr.part.role,
                "sipp": pr.summary(),
                "baseline": base.summary() if base is not None else "n/a",
                "elapsed_s": round(pr.elapsed, 1),
                "scenario_fault": scenario_fault,
                "sdp_answers_checked": len({(a.call_id, a.cseq) for a in pr.answers}),
                "problems": problems,
                "calls": calls,
            }
        )
    return verdicts
