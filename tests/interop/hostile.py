"""Hostile-input vectors and how their handling is judged (used by test_hostile.py and report).

Theory of operation: every RFC 4475 message (``tests/vectors/sip/rfc4475``, MANIFEST.tsv
gives the section and the handling the RFC asks for) and every RFC 5118 message is sent to
the running recorder exactly as stored, over UDP (from a socket bound to the message's own
top-Via port, so that the answer of RFC 3261 section 18.2.2 reaches us) and over a fresh TCP
connection. The *expected* column is reduced to one of:

``reject``   a request the RFC says to refuse: the answer must be a final response >= 400
             (RFC 4475 names 400 for most; 505, 416, 420, 415, 406 for the semantic ones);
             silence is tolerated only when the message's Via cannot be read, because then
             there is nowhere to send an answer (RFC 3261 section 18.2.1);
``discard``  a response (there is no client transaction it could match): silence;
``accept``   a valid request: a final answer that is not 400 (405, 481, 501... are fine);
``either``   the RFC allows accepting or rejecting: anything but a crash.
"""

from __future__ import annotations

import csv
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RFC4475 = ROOT / "tests" / "vectors" / "sip" / "rfc4475"
RFC5118 = ROOT / "tests" / "vectors" / "sip" / "rfc5118"
PROTOS_CAPTURE = ROOT / "tests" / "data" / "interop" / "pcap" / "sipnab_c07-sip-r2.cap"

# RFC 5118 sections and handling (SOURCES.md of the corpus; section 4.10 is "tolerate both").
RFC5118_EXPECTED: dict[str, tuple[str, str]] = {
    "ipv6-good.dat": ("4.1", "accept"),
    "ipv6-bad.dat": ("4.2", "reject"),
    "port-ambiguous.dat": ("4.3", "accept"),
    "port-unambiguous.dat": ("4.4", "accept"),
    "via-received-param-with-delim.dat": ("4.5", "accept"),
    "via-received-param-no-delim.dat": ("4.6", "accept"),
    "ipv6-in-sdp.dat": ("4.7", "accept"),
    "mult-ip-in-header.dat": ("4.8", "accept"),
    "mult-ip-in-sdp.dat": ("4.9", "accept"),
    "ipv6-bug-abnf-3-colons.dat": ("4.10", "either"),
    "ipv6-correct-abnf-2-colons.dat": ("4.10", "accept"),
    "ipv4-mapped-ipv6.dat": ("4.11", "accept"),
}


# Vectors whose RFC 4475 text is softer than the manifest's "reject": (expect, note).
# (None so far: insuf.dat, 3.3.1 "Ideally, it will respond with a 400", is held to the 400
# the recorder gives.)
OVERRIDES: dict[str, tuple[str, str]] = {}
# Over a stream a bad Content-Length cannot be framed: the answer is 400, closing the
# connection, or (clerr: the declared body never completes) waiting for more bytes.
# inv2543 has no Content-Length at all, which a stream transport cannot frame either
# (RFC 3261 section 18.3).
STREAM_FRAMING = {"clerr.dat", "ncl.dat", "mcl01.dat", "inv2543.dat"}


@dataclass(frozen=True, slots=True)
class Vector:
    suite: str  # "rfc4475" / "rfc5118"
    name: str
    section: str
    title: str
    handling: str  # the RFC's words (manifest)
    expect: str  # reject / discard / accept / either
    data: bytes

    @property
    def is_response(self) -> bool:
        return self.data.startswith(b"SIP/")


def _reduce(handling: str, data: bytes) -> str:
    h = handling.lower()
    if data.startswith(b"SIP/"):
        return "discard"
    if "or tolerate" in h or "may accept" in h or "unless" in h:
        return "either"
    if h.startswith("reject"):
        return "reject"
    if h.startswith("discard"):
        return "discard"
    return "accept"


def load_vectors() -> list[Vector]:
    out: list[Vector] = []
    with open(RFC4475 / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            data = (RFC4475 / row["file"]).read_bytes()
            expect = _reduce(row["expected_handling"], data)
            expect = OVERRIDES.get(row["file"], (expect, ""))[0]
            out.append(
                Vector(
                    "rfc4475",
                    row["file"],
                    row["rfc4475_section"],
                    row["title"],
                    row["expected_handling"],
                    expect,
                    data,
                )
            )
    for name, (section, expect) in RFC5118_EXPECTED.items():
        data = (RFC5118 / name).read_bytes()
        out.append(Vector("rfc5118", name, section, "", expect, expect, data))
    return out


def via_readable(data: bytes) -> bool:
    """Whether the top Via looks like ``SIP/2.0/<transport> host[:port]`` at all."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in re.sub(r"\r\n[ \t]+", " ", head).split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() in ("via", "v"):
            return bool(re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*[A-Za-z]+\s+\S", v))
    return False


def transaction_key(data: bytes) -> tuple[str | None, str | None, str]:
    """(branch, sent-by, method) of the top Via: RFC 3261 section 17.2.3 matching.

    Two vectors with the same key are one transaction to a compliant server (the second is
    answered as a retransmission of the first), so they are sent in different rounds.
    """
    head = re.sub(r"\r\n[ \t]+", " ", data.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
    via = ""
    for line in head.split("\r\n")[1:]:
        k, _, val = line.partition(":")
        if k.strip().lower() in ("via", "v"):
            via = val
            break
    branch = re.search(r"branch\s*=\s*([^\s;,]+)", via)
    sent_by = re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*\S+\s+([^;,]+)", via)
    method = head.split(" ", 1)[0]
    return (
        branch.group(1) if branch else None,
        sent_by.group(1).strip().lower() if sent_by else None,
        "INVITE" if method == "ACK" else method,
    )


def rounds(vectors: list[Vector]) -> list[list[Vector]]:
    """Vectors split so that no round holds two with the same transaction key."""
    seen: dict[tuple[str | None, str | None, str], int] = {}
    out: list[list[Vector]] = []
    for v in vectors:
        key = transaction_key(v.data)
        r = seen.get(key, -1) + 1
        seen[key] = r
        while len(out) <= r:
            out.append([])
        out[r].append(v)
    return out


def judge_vector(
    vector: Vector, statuses: list[int], transport: str = "udp", closed: bool = False
) -> str | None:
    """None when the observed statuses satisfy the expectation, else what is wrong."""
    finals = [s for s in statuses if s >= 200]
    if transport != "udp" and vector.name in STREAM_FRAMING:
        if any(200 <= s < 300 for s in finals):
            return f"accepted an unframeable message ({finals})"
        if vector.name != "clerr.dat" and 400 not in finals and not closed:
            return "neither 400 nor closing the connection on an unframeable message"
        return None  # clerr: the declared body may still come, waiting is right
    if vector.expect == "discard":
        return None if not statuses else f"answered a response with {statuses}"
    if vector.expect == "accept":
        # the first final answer is the message's own (over a stream, dblreq's trailing
        # bytes are a second, broken message that may draw its own 400)
        if finals and finals[0] == 400:
            return f"rejected a valid message with {finals}"
        return None if finals else "no final answer to a valid request"
    if vector.expect == "reject":
        if any(200 <= s < 300 for s in finals):
            return f"accepted an invalid message ({finals})"
        if not finals:
            return None if not via_readable(vector.data) else "no answer (expected >= 400)"
        return None
    return None  # either


def protos_messages(capture: Path = PROTOS_CAPTURE) -> list[bytes]:
    """The SIP payloads of the PROTOS c07-sip capture (NetMon 2.x), read with tshark."""
    res = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            "-Y",
            "udp.dstport == 80",
            "-T",
            "fields",
            "-e",
            "udp.payload",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [
        bytes.fromhex(line.strip().replace(":", ""))
        for line in res.stdout.splitlines()
        if line.strip()
    ]
