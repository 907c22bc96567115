"""The SIP layer: messages, URIs, SDP, multipart bodies, transactions, a sans-IO core.

Nothing here imports other layers of siprec-recorder except :mod:`siprec_recorder.errors`.
The asyncio edge lives in :mod:`siprec_recorder.sip.transport`.
"""

from siprec_recorder.sip.core import SipCore
from siprec_recorder.sip.dialog import Dialog, DialogId
from siprec_recorder.sip.errors import MessageTooLarge, MultipartError, SdpError, SipParseError
from siprec_recorder.sip.events import (
    AckReceived,
    Address,
    Event,
    InviteCancelled,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
)
from siprec_recorder.sip.headers import CSeq, Headers, Via
from siprec_recorder.sip.message import (
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
    uas_precheck,
)
from siprec_recorder.sip.multipart import BodyPart, build_multipart, split_body
from siprec_recorder.sip.parser import StreamFramer
from siprec_recorder.sip.sdp import Crypto, MediaDescription, RtpMap, SessionDescription
from siprec_recorder.sip.transaction import TimerConfig, new_branch
from siprec_recorder.sip.uri import AbsoluteUri, NameAddr, SipUri, TelUri, parse_uri

__all__ = [
    "AbsoluteUri", "AckReceived", "Address", "BodyPart", "CSeq", "Crypto", "Dialog",
    "DialogId", "Event", "Headers", "InviteCancelled", "MediaDescription", "MessageRejected",
    "MessageTooLarge", "MultipartError", "NameAddr", "RequestReceived", "ResponseReceived",
    "RtpMap", "SdpError", "SessionDescription", "SipCore", "SipParseError", "SipRequest",
    "SipResponse", "SipUri", "StreamFramer", "TelUri", "TimerConfig", "TransactionKey",
    "TransactionTimedOut", "Via", "build_multipart", "make_response", "new_branch",
    "parse_message", "parse_uri", "split_body", "uas_precheck",
]  # fmt: skip
