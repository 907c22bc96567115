"""Replay a captured SIP call (pcap/pcapng, both RTP directions) as a SIPREC session.

``siprec-recorder replay CAPTURE --to HOST:PORT`` (see :mod:`.cli`), or from code
:func:`replay_capture`.  The pieces: :mod:`.capture` reads the file, :mod:`.calls` finds
the call and its RTP, :mod:`.src` plays the SRC.
"""

from __future__ import annotations

from .api import load_call, replay_capture, replay_many
from .calls import CapturedCall, Leg, RtpRecord, find_calls
from .capture import Capture, CaptureError, Datagram, read_capture
from .src import ReplayResult, SrcOptions, replay_call

__all__ = [
    "Capture",
    "CaptureError",
    "CapturedCall",
    "Datagram",
    "Leg",
    "ReplayResult",
    "RtpRecord",
    "SrcOptions",
    "find_calls",
    "load_call",
    "read_capture",
    "replay_call",
    "replay_capture",
    "replay_many",
]
