"""The recorder behind the shipped Kamailio config: its own BYE reaches the SRC through it, and
the replay tool's ACK and BYE reach the recorder through it."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from siprec_recorder.testing import RecorderProcess, write_config
from tests.compliance.srcdriver import SipResponse, SrcCall

from .kamailio import Kamailio

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


class RoutedSrc(SrcCall):
    """The test SRC, as a UAC that keeps the route set of its dialog (RFC 3261 12.1.2)."""

    routes: list[str]

    def _transact(self, data: bytes, timeout: float, want_final: bool = True) -> SipResponse:
        resp = super()._transact(data, timeout, want_final)
        if 200 <= resp.status < 300 and data.startswith(b"INVITE"):
            head = resp.text.partition("\r\n\r\n")[0]
            rr = re.findall(r"^Record-Route:\s*(.+)$", head, re.M | re.I)
            self.routes = [r.strip() for line in reversed(rr) for r in reversed(line.split(","))]
        return resp

    def _request(self, method: str, cseq: int, to: str, *args: object, **kw: object) -> bytes:
        data = super()._request(method, cseq, to, *args, **kw)  # type: ignore[arg-type]
        routes = getattr(self, "routes", [])
        if method in ("ACK", "BYE") and routes:
            head, sep, rest = data.partition(b"\r\n")
            route = "".join(f"Route: {r}\r\n" for r in routes).encode()
            data = head + sep + route + rest
        return data


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[RecorderProcess]:
    cfg = write_config(tmp_path, rtp={"inactivity_timeout": 2.0})
    rp = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings")
    rp.start()
    yield rp
    rp.stop()


def test_the_recorders_bye_reaches_the_src_through_strict_kamailio(
    recorder: RecorderProcess, tmp_path: Path
) -> None:
    kam = Kamailio(tmp_path / "kamailio", [recorder.listeners["udp"]])
    kam.start()
    call = RoutedSrc(kam.address, seed=9, caller="+32470000041")
    try:
        resp = call.invite()
        assert resp.status == 200, resp.text + kam.log()[-2000:]
        assert call.routes and "lr" in call.routes[0]
        # No RTP: the recorder ends the call after its inactivity timeout with its own BYE.
        call.sock.settimeout(15)
        while True:
            data, sender = call.sock.recvfrom(65535)
            if data.startswith(b"BYE "):
                break
        assert sender == kam.address  # through the proxy, not around it
        text = data.decode()
        assert call.call_id in text
        head = text.split("\r\n\r\n")[0].split("\r\n")
        keep = [
            h
            for h in head[1:]
            if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        call.sock.sendto(
            ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
            sender,
        )
        rows = recorder.wait_for_recordings(1, number="+32470000041")
        assert rows[0]["call_id"] == call.call_id
        assert "cannot send BYE" not in recorder.log()
    finally:
        call.close()
        kam.stop()


def test_kamailio_refuses_an_in_dialog_request_without_its_route(
    recorder: RecorderProcess, tmp_path: Path
) -> None:
    kam = Kamailio(tmp_path / "kamailio", [recorder.listeners["udp"]])
    kam.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            port = s.getsockname()[1]
            bye = (
                f"BYE sip:src@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:srs@127.0.0.1>;tag=a\r\n"
                "To: <sip:src@127.0.0.1>;tag=b\r\nCall-ID: x1\r\nCSeq: 2 BYE\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(bye.encode(), kam.address)
            assert s.recv(4096).startswith(b"SIP/2.0 404")
    finally:
        kam.stop()


def test_behind_a_trusted_proxy_the_allowlist_and_limits_apply_to_each_src(
    tmp_path: Path,
) -> None:
    """Kamailio on 127.0.0.1 in front; SRCs on 127.0.0.5, .6 (not allowed) and .7. With the
    proxy as the source, one session per source would refuse every second call."""
    cfg = write_config(
        tmp_path,
        sip={
            "listen": ["udp:127.0.0.1:0"],
            "allowed_sources": ["127.0.0.5/32", "127.0.0.7/32"],
            "trusted_proxies": ["127.0.0.1/32"],
            "max_sessions_per_source": 1,
        },
        rtp={"inactivity_timeout": 10.0},
    )
    rp = RecorderProcess(workdir=tmp_path, config_path=cfg, recordings=tmp_path / "recordings")
    rp.start()
    kam = Kamailio(tmp_path / "kamailio", [rp.listeners["udp"]])
    kam.start()
    first = RoutedSrc(kam.address, seed=3, caller="+32470000051", host="127.0.0.5")
    unlisted = RoutedSrc(kam.address, seed=4, caller="+32470000052", host="127.0.0.6")
    again = RoutedSrc(kam.address, seed=5, caller="+32470000053", host="127.0.0.5")
    other = RoutedSrc(kam.address, seed=6, caller="+32470000054", host="127.0.0.7")
    try:
        assert first.invite().status == 200, kam.log()[-2000:]
        first.start_audio(2.0)
        assert unlisted.invite().status == 403
        # the same SRC's second session is over its own budget (Kamailio has no other node)
        # and the SRC is told to try later, not that the recorder failed (500)
        refused = again.invite()
        assert refused.status == 503, refused.text
        assert refused.headers.get("retry-after") == "10", refused.text
        # ... while another SRC behind the same proxy is not counted against it
        assert other.invite().status == 200
        other.start_audio(2.0)
        first.wait_audio(10)
        other.wait_audio(10)
        assert first.bye().status == 200 and other.bye().status == 200
        rows = rp.wait_for_recordings(2)
        hop = f"udp:127.0.0.1:{kam.port}"
        for call, number in ((first, "+32470000051"), (other, "+32470000054")):
            row = next(r for r in rows if r["call_id"] == call.call_id)
            assert row["state"] == "complete", row
            assert row["source"] == hop
            assert row["origin"] == f"{call.host}:{call.port}"
            assert number in (row["recorded_number"], row["other_number"])
        assert rp.search("--number", "+32470000052") == []  # 403: not even a declined row
    finally:
        for c in (first, unlisted, again, other):
            c.close()
        kam.stop()
        rp.stop()


def test_the_replay_tools_call_goes_through_strict_kamailio(
    recorder: RecorderProcess, tmp_path: Path
) -> None:
    # Kamailio record-routes the INVITE; its loose_route() turns away (404) an in-dialog
    # request without its Route, so a 200 to the BYE means the ACK and BYE followed the
    # route set rather than going to the recorder's Contact or to --to without it.
    kam = Kamailio(tmp_path / "kamailio", [recorder.listeners["udp"]])
    kam.start()
    try:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "siprec_recorder",
                "replay",
                str(ROOT / "pcaps" / "sipp_g711a.pcap"),
                "--to",
                f"{kam.address[0]}:{kam.address[1]}",
                "--speed",
                "10",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr + kam.log()[-2000:]
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["status"] == 200 and summary["bye_status"] == 200, summary
        assert not summary["hung_up_by_recorder"]
        (row,) = recorder.wait_for_recordings(1)
    finally:
        kam.stop()
    assert row["call_id"] == summary["call_id"]
    assert row["state"] == "complete", row
    assert row["reason"] is None, row  # ended by the SRC's BYE (not no-ACK, not inactivity)
    assert [s["packets_received"] for s in row["streams"]] == [236]
