"""Hostile input against the running recorder process (issue 3, "Hostile input").

* all 49 RFC 4475 and 12 RFC 5118 messages, over UDP and over TCP, as one batch each;
  each message judged by :func:`tests.interop.hostile.judge_vector`; after each batch the
  process is alive, logged no traceback, and a good SIPREC call still gets 200 and records;
* the PROTOS c07-sip capture replayed at the SIP port (UDP and TCP), same checks;
* sources outside ``allowed_sources`` get 403, or silence when so configured, and leave no
  index row; a per-source rate limit answers 503 + Retry-After while another loopback
  source (127.0.0.2) still records;
* a participant ``sip:../../etc/passwd@x`` does not place anything outside the recordings
  folder.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import RESULTS, require_tool, write_results
from .hostile import Vector, judge_vector, load_vectors, protos_messages, rounds
from .sipclient import (
    exchange_tcp,
    exchange_udp,
    in_dialog_request,
    parse_response,
    siprec_call,
    siprec_invite,
)

pytestmark = [pytest.mark.integration]

VECTORS = load_vectors()
_RESULTS: dict[str, Any] = {"vectors": {}, "protos": {}, "checks": {}}


def _save() -> None:
    """Merge this run's results into build/interop/hostile.json (a partial run, e.g. with
    ``-k``, updates its own entries and keeps the others)."""
    merged: dict[str, Any] = {"vectors": {}, "protos": {}, "checks": {}}
    try:
        merged.update(json.loads((RESULTS / "hostile.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    for key in ("vectors", "checks"):
        merged[key] = {**merged.get(key, {}), **_RESULTS[key]}
    if _RESULTS["protos"]:
        merged["protos"] = _RESULTS["protos"]
    write_results("hostile", merged)


def _source_ip(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


def good_call_recorded(
    rec: Any,
    transport: str = "udp",
    source_ip: str = "127.0.0.1",
    aors: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A good SIPREC call gets 200, its BYE 200, and ends as a complete recording."""
    number = f"+3247{secrets.randbelow(10**7):07d}"
    aors = aors or (f"tel:{number}", "tel:+32470999999")
    res = siprec_call(
        rec.listeners[transport], transport=transport, source_ip=source_ip, aors=aors, duration=0.6
    )
    assert res.status == 200, (res, rec.log()[-3000:])
    assert res.bye_status == 200, (res, rec.log()[-3000:])
    rows = rec.wait_for_recordings(
        1, timeout=45, number=number if aors[0].endswith(number) else aors[1]
    )
    rows = [r for r in rows if r["call_id"] == res.call_id]
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    assert row["state"] == "complete", row
    return row


def assert_alive(rec: Any) -> None:
    assert rec.proc is not None and rec.proc.poll() is None, rec.log()[-4000:]
    assert "Traceback" not in rec.log(), rec.log()[-6000:]


# ---------------------------------------------------------------------- torture batches
# A short T1 makes every transaction end (Timer J / L = 64*T1) within ROUND_GAP, so that a
# vector reusing an earlier vector's branch is judged on its own (see hostile.rounds).
T1 = 0.02
ROUND_GAP = 64 * T1 + 0.4

# Open bugs (see test_findings.py / docs/interop.md): strict xfail, so the fix shows up.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def hostile_rec(module_recorders: Any) -> Any:
    return module_recorders("hostile", sip={"t1": T1, "t2": 4.0})


def _send(rec: Any, transport: str, i: int, v: Vector) -> tuple[str, list[int], bool]:
    if transport == "udp":
        rs = exchange_udp(rec.listeners["udp"], v.data, source_ip=_source_ip(i), wait=1.0)
        return v.name, [r.status for r in rs], False
    rs, closed = exchange_tcp(rec.listeners["tcp"], v.data, wait=1.0)
    return v.name, [r.status for r in rs], closed


@pytest.fixture(scope="module")
def torture(hostile_rec: Any) -> dict[str, dict[str, tuple[list[int], bool]]]:
    """Send every vector once per transport (a batch each, in rounds); statuses per name."""
    out: dict[str, dict[str, tuple[list[int], bool]]] = {}
    index = {v.name: i for i, v in enumerate(VECTORS)}
    for transport in ("udp", "tcp"):
        out[transport] = {}
        for batch in rounds(VECTORS):
            with ThreadPoolExecutor(max_workers=16) as pool:
                for name, statuses, closed in pool.map(
                    lambda v, t=transport: _send(hostile_rec, t, index[v.name], v), batch
                ):
                    out[transport][name] = (statuses, closed)
            time.sleep(ROUND_GAP)
        for v in VECTORS:
            statuses, closed = out[transport][v.name]
            _RESULTS["vectors"][f"{v.suite}/{v.name}/{transport}"] = {
                "suite": v.suite,
                "name": v.name,
                "section": v.section,
                "title": v.title,
                "handling": v.handling,
                "expect": v.expect,
                "transport": transport,
                "observed": statuses,
                "closed": closed,
                "problem": judge_vector(v, statuses, transport, closed),
                "known_bug": KNOWN_BUGS.get((v.name, transport)),
            }
        _save()
    return out


def _vector_params() -> list[Any]:
    params = []
    for v in VECTORS:
        for t in ("udp", "tcp"):
            bug = KNOWN_BUGS.get((v.name, t))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(v, t, id=f"{v.suite}-{v.name}-{t}", marks=marks))
    return params


@pytest.mark.parametrize(("vector", "transport"), _vector_params())
def test_torture_message(
    torture: dict[str, dict[str, tuple[list[int], bool]]], vector: Vector, transport: str
) -> None:
    statuses, closed = torture[transport][vector.name]
    problem = judge_vector(vector, statuses, transport, closed)
    assert problem is None, f"{vector.name} ({vector.handling}) over {transport}: {problem}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_after_torture_batch_a_good_call_records(
    torture: Any, hostile_rec: Any, transport: str
) -> None:
    assert_alive(hostile_rec)
    row = good_call_recorded(hostile_rec, transport)
    _RESULTS["checks"][f"good call after torture batch ({transport})"] = {
        "expected": "200, BYE 200, complete recording",
        "observed": f"200, {row['state']}",
    }
    _save()


def test_counts() -> None:
    assert sum(v.suite == "rfc4475" for v in VECTORS) == 49
    assert sum(v.suite == "rfc5118" for v in VECTORS) == 12


# ---------------------------------------------------------------------- PROTOS
def test_protos_capture_replayed(hostile_rec: Any) -> None:
    require_tool("tshark")
    messages = protos_messages()
    assert len(messages) == 37
    by_status: dict[str, dict[str, int]] = {"udp": {}, "tcp": {}}

    def one(item: tuple[int, bytes]) -> tuple[list[int], list[int]]:
        i, data = item
        udp = exchange_udp(
            hostile_rec.listeners["udp"], data, source_ip=f"127.0.3.{1 + i}", wait=1.0
        )
        tcp, _ = exchange_tcp(hostile_rec.listeners["tcp"], data, wait=1.0)
        return [r.status for r in udp], [r.status for r in tcp]

    with ThreadPoolExecutor(max_workers=16) as pool:
        for udp, tcp in pool.map(one, list(enumerate(messages))):
            for transport, statuses in (("udp", udp), ("tcp", tcp)):
                for st in statuses:
                    by_status[transport][str(st)] = by_status[transport].get(str(st), 0) + 1
                if not statuses:
                    by_status[transport]["none"] = by_status[transport].get("none", 0) + 1
    assert_alive(hostile_rec)
    _RESULTS["protos"] = {"messages": len(messages), "answers": by_status}
    _save()
    for transport in ("udp", "tcp"):
        good_call_recorded(hostile_rec, transport)
    _RESULTS["checks"]["good call after PROTOS replay (udp, tcp)"] = {
        "expected": "200 and complete recording",
        "observed": "200, complete",
    }
    _save()


# ---------------------------------------------------------------------- path names
def test_participant_path_traversal_stays_inside_recordings(hostile_rec: Any) -> None:
    before = os.stat("/etc/passwd").st_mtime_ns
    evil = ("sip:../../etc/passwd@x", "tel:+32470000777")
    res = siprec_call(hostile_rec.listeners["udp"], aors=evil, duration=0.4)
    assert res.status == 200, res
    rows = [
        r
        for r in hostile_rec.wait_for_recordings(1, timeout=45, number="+32470000777")
        if r["call_id"] == res.call_id
    ]
    assert len(rows) == 1
    root = hostile_rec.recordings.resolve()
    for key in ("file", "sidecar"):
        if rows[0].get(key):
            assert (root / rows[0][key]).resolve().is_relative_to(root), rows[0][key]
            assert ".." not in Path(rows[0][key]).parts
    # nothing named after the attack anywhere in the recorder's work area
    for path in hostile_rec.workdir.rglob("*"):
        assert "passwd" not in path.name, path
        if path.is_file() and path.suffix in (".mp3", ".part", ".spool"):
            assert path.resolve().is_relative_to(root), path
    assert os.stat("/etc/passwd").st_mtime_ns == before
    _RESULTS["checks"]["participant sip:../../etc/passwd@x"] = {
        "expected": "recorded, file inside recordings dir",
        "observed": rows[0]["file"],
    }
    _save()


# ---------------------------------------------------------------------- sources
def _invite_from(
    target: tuple[str, int], source_ip: str, transport: str = "udp", wait: float = 2.0
) -> list[int]:
    call_id = f"unauth-{secrets.token_hex(6)}@{source_ip}"
    if transport == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source_ip, 0))
        local = s.getsockname()
        s.close()
        data = siprec_invite(
            call_id=call_id,
            local=local,
            target=target,
            transport="udp",
            aors=("tel:+32470000001", "tel:+32470999999"),
            rtp_port=30000,
        )
        return [
            r.status
            for r in exchange_udp(
                target, data, source_ip=source_ip, source_port=local[1], wait=wait
            )
        ]
    data = siprec_invite(
        call_id=call_id,
        local=(source_ip, 5060),
        target=target,
        transport="tcp",
        aors=("tel:+32470000001", "tel:+32470999999"),
        rtp_port=30000,
    )
    rs, _ = exchange_tcp(target, data, source_ip=source_ip, wait=wait)
    return [r.status for r in rs]


def test_unlisted_source_gets_403_and_no_row(module_recorders: Any) -> None:
    rec = module_recorders("allow403", sip={"allowed_sources": ["10.99.0.0/16"]})
    for transport in ("udp", "tcp"):
        statuses = _invite_from(rec.listeners[transport], "127.0.0.1", transport)
        if transport == "udp":
            assert statuses == [403], statuses  # one stateless 403, no 100 Trying
        else:  # over a stream the SRS stays silent (no reflection risk either way)
            assert statuses in ([], [403]), statuses
        _RESULTS["checks"][f"INVITE from unlisted source ({transport})"] = {
            "expected": "one stateless 403" if transport == "udp" else "403 or no answer",
            "observed": f"{statuses or 'no answer'}",
        }
    time.sleep(0.5)
    rows = rec.search()
    assert rows == []
    assert_alive(rec)
    _RESULTS["checks"]["index rows after unlisted INVITEs (403)"] = {
        "expected": "none",
        "observed": str(len(rows)),
    }
    _save()


def test_unlisted_source_gets_silence_when_configured(module_recorders: Any) -> None:
    rec = module_recorders(
        "allowsilent", sip={"allowed_sources": ["10.99.0.0/16"], "unauthorised_response": "silence"}
    )
    for transport in ("udp", "tcp"):
        statuses = _invite_from(rec.listeners[transport], "127.0.0.1", transport, wait=2.0)
        assert statuses == [], (transport, statuses)
        _RESULTS["checks"][f"INVITE from unlisted source, silence ({transport})"] = {
            "expected": "no answer",
            "observed": f"{statuses or 'no answer'}",
        }
    rows = rec.search()
    assert rows == []
    assert_alive(rec)
    _RESULTS["checks"]["index rows after unlisted INVITEs (silence)"] = {
        "expected": "none",
        "observed": str(len(rows)),
    }
    _save()


def test_rate_limit_503_while_other_source_records(module_recorders: Any) -> None:
    rec = module_recorders("ratelimit", sip={"rate_limit_per_source": 1.0, "rate_limit_burst": 2})
    target = rec.listeners["udp"]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    local = s.getsockname()
    invites: dict[str, bytes] = {}
    for i in range(10):
        cid = f"burst-{i}-{secrets.token_hex(4)}@127.0.0.1"
        invites[cid] = siprec_invite(
            call_id=cid,
            local=local,
            target=target,
            transport="udp",
            aors=("tel:+32470001000", "tel:+32470999999"),
            rtp_port=31000 + 4 * i,
            from_tag=f"b{i}",
        )
        s.sendto(invites[cid], target)
    finals: dict[str, Any] = {}
    deadline = time.monotonic() + 5
    while len(finals) < len(invites) and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            r = parse_response(s.recv(65535))
        except (TimeoutError, OSError):
            break
        if r is not None and r.status >= 200:
            finals.setdefault(r.header("call-id") or "", r)
    try:
        # meanwhile another allowed source still gets through and records
        good_call_recorded(rec, "udp", source_ip="127.0.0.2")
    finally:
        for cid, r in finals.items():  # hang up what the burst got
            if r.status == 200:
                s.sendto(in_dialog_request("ACK", invites[cid], r, 1, local, "udp"), target)
                s.sendto(in_dialog_request("BYE", invites[cid], r, 2, local, "udp"), target)
        s.close()
    statuses = sorted(r.status for r in finals.values())
    rejected = [r for r in finals.values() if r.status == 503]
    assert rejected, statuses
    assert all(r.header("retry-after") for r in rejected), [r.headers for r in rejected]
    assert statuses.count(200) >= 1, statuses
    assert_alive(rec)
    _RESULTS["checks"]["10 INVITEs at once, rate 1/s burst 2, + call from 127.0.0.2"] = {
        "expected": "503 + Retry-After past the burst; other source records",
        "observed": f"{statuses}; Retry-After {rejected[0].header('retry-after')}; "
        "127.0.0.2 recorded",
    }
    _save()


def test_unlisted_source_403_is_stateless(module_recorders: Any) -> None:
    rec = module_recorders("allow403stateless", sip={"allowed_sources": ["127.0.0.1/32"]})
    target = rec.listeners["udp"]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.9", 0))
    try:
        data = siprec_invite(
            call_id="stateless@127.0.0.9",
            local=s.getsockname(),
            target=target,
            transport="udp",
            aors=("tel:+32470000001", "tel:+32470999999"),
            rtp_port=30000,
        )
        s.sendto(data, target)
        statuses: list[int] = []
        deadline = time.monotonic() + 2.5
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                r = parse_response(s.recv(65535))
            except (TimeoutError, OSError):
                break
            if r is not None:
                statuses.append(r.status)
    finally:
        s.close()
    _RESULTS["checks"]["INVITE from unlisted source: answers within 2.5 s (no ACK sent)"] = {
        "expected": "one 403 (stateless)",
        "observed": str(statuses),
    }
    _save()
    assert statuses == [403]
