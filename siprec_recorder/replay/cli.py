"""``siprec-recorder replay``: argument wiring and the command itself."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from siprec_recorder.errors import LocalProtocolError

from .api import replay_many
from .capture import CaptureError
from .src import SRTP_SUITES

__all__ = ["STEREO_LABELS", "add_arguments", "parse_target", "run"]

#: Labels used with --stereo-labels: the caller's stream first (left), the callee's second.
STEREO_LABELS = ("caller", "callee")


def parse_target(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return host, number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _positive_int(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a whole number >= 1")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay options to ``parser``."""
    parser.add_argument("capture", help="pcap or pcapng file holding a SIP call and its RTP")
    parser.add_argument(
        "--to", required=True, type=parse_target, metavar="HOST:PORT", help="the recorder"
    )
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument(
        "--speed", type=_positive_float, default=1.0, help="1.0 = real time, 4 = four times faster"
    )
    parser.add_argument("--srtp", action="store_true", help="offer SDES SRTP and protect media")
    parser.add_argument(
        "--srtp-suite",
        default="AES_CM_128_HMAC_SHA1_80",
        choices=tuple(SRTP_SUITES),
        help="crypto suite of --srtp's random key",
    )
    parser.add_argument(
        "--srtp-key",
        default=None,
        metavar="'SUITE inline:KEY'",
        help="the capture's RTP is SRTP with this SDES key: offer it, send packets as captured",
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=None,
        help="replay only this many seconds of media",
    )
    parser.add_argument(
        "--skip-seconds",
        type=_non_negative_float,
        default=0.0,
        help="start this many seconds into the captured media",
    )
    parser.add_argument(
        "--calls", type=_positive_int, default=1, help="concurrent copies of the call"
    )
    parser.add_argument(
        "--stereo-labels",
        action="store_true",
        help="label the m-lines 'caller' and 'callee' instead of '1' and '2'",
    )
    parser.add_argument(
        "--call-index", type=int, default=0, help="which call of the capture (0 = first)"
    )
    parser.add_argument("--local-host", default="127.0.0.1", help="address to send from")
    parser.add_argument("--caller", default=None, help="override the caller's AOR")
    parser.add_argument("--callee", default=None, help="override the callee's AOR")


async def run(args: argparse.Namespace) -> int:
    """Run the replay; print one JSON line per call; 0 when every call went through."""
    labels = STEREO_LABELS if getattr(args, "stereo_labels", False) else ("1", "2")
    try:
        results = await replay_many(
            args.capture,
            args.to,
            args.calls,
            transport=args.transport,
            speed=args.speed,
            local_host=args.local_host,
            srtp=args.srtp,
            call_index=args.call_index,
            labels=labels,
            caller_aor=args.caller,
            callee_aor=args.callee,
            srtp_suite=getattr(args, "srtp_suite", "AES_CM_128_HMAC_SHA1_80"),
            srtp_key=getattr(args, "srtp_key", None),
            max_seconds=getattr(args, "max_seconds", None),
            skip_seconds=getattr(args, "skip_seconds", 0.0),
        )
    except (LocalProtocolError, CaptureError, OSError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    for result in results:
        summary: dict[str, Any] = {
            "call_id": result.call_id,
            "status": result.status,
            "bye_status": result.bye_status,
            "hung_up_by_recorder": result.hung_up_by_recorder,
            "labels": result.labels,
            "packets_sent": result.packets_sent,
            "duration_s": round(result.duration, 3),
            "reason": result.reason,
        }
        print(json.dumps(summary))
        if not result.ok and result.reason:
            print(f"replay: call {result.call_id}: {result.reason}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1
