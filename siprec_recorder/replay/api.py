"""Library entry points of the replay tool: capture file in, SIPREC session(s) out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypedDict, Unpack

from siprec_recorder.errors import LocalProtocolError

from .calls import CapturedCall, find_calls
from .capture import read_capture
from .src import ROLE_LABELS, SRTP_SUITES, ReplayResult, SrcOptions, replay_call

__all__ = ["ReplaySettings", "load_call", "replay_capture", "replay_many"]


def load_call(path: str | Path, call_index: int = 0) -> CapturedCall:
    """Read a capture and return its ``call_index``-th call (raises LocalProtocolError)."""
    calls = find_calls(read_capture(path))
    if not calls:
        raise LocalProtocolError(f"{path}: no call with RTP found in the capture")
    if not 0 <= call_index < len(calls):
        raise LocalProtocolError(
            f"{path}: call index {call_index} out of range (the capture has {len(calls)})"
        )
    return calls[call_index]


class ReplaySettings(TypedDict, total=False):
    """The keywords of :func:`replay_capture` and :func:`replay_many` (all optional; the
    defaults are :func:`_options`'s)."""

    transport: str
    speed: float
    local_host: str
    srtp: bool
    call_index: int
    labels: tuple[str, str]
    caller_aor: str | None
    callee_aor: str | None
    srtp_suite: str
    srtp_key: str | None
    max_seconds: float | None
    skip_seconds: float


def _options(
    to: tuple[str, int],
    *,
    call_index: int = 0,
    transport: str = "udp",
    speed: float = 1.0,
    local_host: str = "127.0.0.1",
    srtp: bool = False,
    labels: tuple[str, str] = ROLE_LABELS,
    caller_aor: str | None = None,
    callee_aor: str | None = None,
    srtp_suite: str = "AES_CM_128_HMAC_SHA1_80",
    srtp_key: str | None = None,
    max_seconds: float | None = None,
    skip_seconds: float = 0.0,
) -> tuple[SrcOptions, int]:
    """The validated options of a replay, and the index of the call to replay."""
    if transport not in ("udp", "tcp"):
        raise LocalProtocolError(f"transport must be 'udp' or 'tcp', not {transport!r}")
    if speed <= 0:
        raise LocalProtocolError(f"speed must be positive, not {speed}")
    if srtp_suite.strip().upper() not in SRTP_SUITES:
        raise LocalProtocolError(
            f"SRTP suite {srtp_suite!r} not supported (one of {', '.join(SRTP_SUITES)})"
        )
    if srtp_key is not None:
        parts = srtp_key.split()
        if len(parts) != 2 or not parts[1].lower().startswith("inline:"):
            raise LocalProtocolError("srtp_key must read '<suite> inline:<base64 key||salt>'")
    if max_seconds is not None and max_seconds <= 0:
        raise LocalProtocolError(f"max_seconds must be positive, not {max_seconds}")
    if skip_seconds < 0:
        raise LocalProtocolError(f"skip_seconds must not be negative, not {skip_seconds}")
    options = SrcOptions(
        to=to,
        transport=transport,
        speed=speed,
        local_host=local_host,
        srtp=srtp,
        labels=labels,
        caller_aor=caller_aor,
        callee_aor=callee_aor,
        srtp_suite=srtp_suite.strip().upper(),
        srtp_key=srtp_key,
        max_seconds=max_seconds,
        skip_seconds=skip_seconds,
    )
    return options, call_index


async def replay_capture(
    path: str | Path, to: tuple[str, int], **settings: Unpack[ReplaySettings]
) -> ReplayResult:
    """Replay one call of a capture as a SIPREC session against the recorder at ``to``.

    ``call_index`` picks the call; ``srtp=True`` protects the media with a random key of
    ``srtp_suite``; ``srtp_key`` (``"<suite> inline:<base64>"``) offers that key for a
    capture whose RTP is SRTP already and sends it as captured; ``max_seconds`` /
    ``skip_seconds`` replay a part of the media.
    """
    (result,) = await replay_many(path, to, 1, **settings)
    return result


async def replay_many(
    path: str | Path, to: tuple[str, int], calls: int, **settings: Unpack[ReplaySettings]
) -> list[ReplayResult]:
    """``calls`` concurrent copies of one captured call (own Call-ID and ports each)."""
    options, call_index = _options(to, **settings)
    call = await asyncio.to_thread(load_call, path, call_index)
    return list(await asyncio.gather(*(replay_call(call, options) for _ in range(calls))))
