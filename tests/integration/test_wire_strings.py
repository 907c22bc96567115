"""Strings from the wire that once lost calls (the hostile-network audit, the exact bytes).

* an ``a=label:`` of 101 bytes was answered 200 and then broke every spool flush, so that
  a normal call beside it recovered nothing after a SIGKILL;
* a Call-ID with the bytes ``72 32 2d ff 40 ...`` (invalid UTF-8) was answered, recorded
  and then lost (no row, no file, absent from the completeness report);
* From/To with invalid UTF-8 and a malformed Contact made the recorder's own BYE fail;
* a CR in a Call-ID reached the text log unescaped.

The SRC is the compliance tests' :class:`SrcCall` with its bytes patched on the way out.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from siprec_recorder.wiretext import escape
from tests.compliance.srcdriver import PTIME, SrcCall
from tests.compliance.test_crash import audio_extent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG_LABEL = "L" * 101


class PatchedCall(SrcCall):
    """A :class:`SrcCall` whose outgoing SIP bytes go through ``patches`` (old -> new)."""

    patches: list[tuple[bytes, bytes]]
    label: str = "1"

    def _request(self, *args: Any, **kwargs: Any) -> bytes:
        head, sep, body = super()._request(*args, **kwargs).partition(b"\r\n\r\n")
        for old, new in getattr(self, "patches", []):
            head = head.replace(old, new)
        return head + sep + body

    def _offer(self) -> tuple[str, bytes]:
        ctype, body = super()._offer()
        if self.label != "1":
            body = body.replace(b"a=label:1\r\n", f"a=label:{self.label}\r\n".encode())
            body = body.replace(b"<label>1</label>", f"<label>{self.label}</label>".encode())
        return ctype, body


def _completeness(rec: Any) -> dict[str, Any]:
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    res = rec.cli("report", "completeness", "--since", since, "--json")
    return dict(json.loads(res.stdout))


def _strings(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set().union(*(_strings(v) for v in doc.values())) if doc else set()
    if isinstance(doc, list):
        return set().union(*(_strings(v) for v in doc)) if doc else set()
    return {doc} if isinstance(doc, str) else set()


def test_long_label_does_not_stop_the_other_calls_flush(recorder_factory: Any) -> None:
    rec = recorder_factory()
    target = rec.listeners["udp"]
    bad = PatchedCall(target, seed=3, caller="+32470000301")
    bad.label = LONG_LABEL
    good = SrcCall(target, seed=4, caller="+32470000302")
    try:
        for call in (bad, good):
            assert call.invite().status == 200
            call.start_audio(60.0)
        time.sleep(5.0)
        rec.kill()
        sent = {c.call_id: c.stop_audio() for c in (bad, good)}
        first_log = rec.log()
        assert "leg label too long" not in first_log and "flush failed" not in first_log
        rec.start()
        rows = {r["call_id"]: r for r in rec.search()}
        for call in (bad, good):
            row = rows[call.call_id]
            assert row["state"] == "interrupted", row
            start, end, _blocks, _rate = audio_extent(rec.recordings / row["file"])
            sent_s = sent[call.call_id] * PTIME
            # At most about one flush interval lost (the audit found 0.0 s of 4.7 s).
            assert end - start > sent_s - 1.3, (call.call_id, end - start, sent_s)
        # every spool recovered: none left in the node's own folder (.spool/@<node_id>/)
        assert not list((rec.recordings / ".spool").glob("**/manifest.json"))
        assert not [p for p in (rec.recordings / ".spool").glob("@*/*") if p.is_dir()]
    finally:
        bad.close()
        good.close()


def test_invalid_utf8_call_id_is_recorded_and_reported(recorder_factory: Any) -> None:
    rec = recorder_factory()
    call = PatchedCall(rec.listeners["udp"], seed=5, call_id="r2-PLACEHOLDER@src.test")
    raw_id = bytes.fromhex("72322dff40") + b"src.test"  # r 2 - 0xff @ ...
    call.patches = [(b"r2-PLACEHOLDER@src.test", raw_id)]
    try:
        assert call.invite().status == 200
        call.start_audio(3.0)
        call.wait_audio(10.0)
        assert call.bye().status == 200
    finally:
        call.close()
    rows = rec.wait_for_recordings(1)
    stored = escape(raw_id.decode("utf-8", "surrogateescape"))
    assert stored == "r2-\\xff@src.test"
    (row,) = [r for r in rows if r["call_id"] == stored]
    assert row["state"] == "complete", row
    start, end, _b, _r = audio_extent(rec.recordings / row["file"])
    assert end - start > 2.5
    sidecar = json.loads((rec.recordings / row["sidecar"]).read_text(encoding="utf-8"))
    assert sidecar["call_id"] == stored
    report = _completeness(rec)
    assert stored in _strings(report), report
    assert "recording lost" not in rec.log()


def test_recorders_own_bye_with_invalid_from_to_and_malformed_contact(
    recorder_factory: Any,
) -> None:
    rec = recorder_factory(rtp={"inactivity_timeout": 1.5})
    call = PatchedCall(rec.listeners["udp"], seed=6, caller="+32470000306")
    call.patches = [
        (b"From: <sip:+32470000306@", b'From: "Bj\xf6rn \xff" <sip:+32470000306@'),
        (b"To: <sip:srs@", b'To: "\xfe\xfe" <sip:srs@'),
        # An unclosed "<": accepted by the parser, unusable as a request URI.
        (b">;+sip.src", b";+sip.src"),
    ]
    try:
        assert call.invite().status == 200
        call.start_audio(1.0)
        call.wait_audio(5.0)
        # No RTP for 1.5 s: the recorder ends the session with its own BYE.
        call.sock.settimeout(0.5)
        deadline = time.monotonic() + 40
        bye = b""
        while time.monotonic() < deadline:
            try:
                data, addr = call.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if data.startswith(b"BYE "):
                bye = data
                call.sock.sendto(_ok_for(data), addr)
                break
        assert bye, f"the recorder sent no BYE:\n{rec.log()[-3000:]}"
        assert f"Call-ID: {call.call_id}".encode() in bye
        assert b"\xf6rn \xff" in bye  # our To is the SRC's From, byte for byte
    finally:
        call.close()
    (row,) = rec.wait_for_recordings(1)
    assert row["state"] == "complete"
    assert "cannot send BYE" not in rec.log()


def _ok_for(request: bytes) -> bytes:
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    keep = [
        h
        for h in head[1:]
        if h.split(b":", 1)[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
    ]
    return b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"Content-Length: 0", b"", b""])


def test_cr_in_call_id_is_escaped_in_the_log(recorder_factory: Any) -> None:
    rec = recorder_factory()
    call = PatchedCall(rec.listeners["udp"], seed=7, call_id="cr-PLACEHOLDER@src.test")
    call.patches = [(b"cr-PLACEHOLDER@src.test", b"cr-\rFORGED ERROR line@src.test")]
    # A bare CR inside a header is a malformed message: refused (400) or recorded, the log
    # must never carry the CR itself nor a line the SRC forged with it.
    try:
        status = call.invite().status
        assert status in (200, 400)
        if status == 200:
            call.start_audio(1.0)
            call.wait_audio(5.0)
            call.bye()
    finally:
        call.close()
    if status == 200:
        rec.wait_for_recordings(1)
        assert "cr-\\x0dFORGED ERROR line@src.test" in rec.log()
    log = rec.log()
    assert "\r" not in log
    assert not re.search(r"^FORGED", log, re.M)
