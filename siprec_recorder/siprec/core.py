"""The SRS core: SIP events and a clock in, actions out (RFC 7866, RFC 3261, RFC 4028).

Theory of operation: :meth:`SrsCore.handle` takes one :data:`Event` and the time, changes
the sessions it keeps (one :class:`~.session.RecordingSession` per dialog, by Call-ID) and
returns the :data:`Action` list the driver (:mod:`.server`) carries out, in order. The core
opens no socket, starts no task and reads no clock; whatever takes I/O -- the policy's
decision, opening RTP ports, the spool -- is an action whose outcome comes back as an event.

A new INVITE (:class:`RequestIn` without a To tag) is screened (RFC 3261 8.2: source,
extensions, a SIPREC INVITE at all; then the budgets of :mod:`.admission`: the source's
INVITE rate, sessions, sessions per source, free space, which the driver reads and passes in
as :class:`Facts`). Its body is split (SDP offer + RFC 7865 metadata) and its participants
worked out (:mod:`.participants`); then :class:`AskPolicy`. The answer comes back as
:class:`PolicyAnswered`: a declined call gets 403 and a row (:class:`WriteDeclined`), an
accepted one the m-line mapper's plan (:mod:`.streams`) checked against the port budgets
and :class:`ApplyMedia`. :class:`MediaApplied` answers ``200 OK`` -- or 487 if a
:class:`CancelIn` came meanwhile (RFC 3261 9.2) -- and :class:`StartRecording`.

A re-INVITE or UPDATE (RFC 7866 8.1.8, RFC 3311) goes through the same mapper against the
session's legs; a refusal by budget leaves the session as it was (RFC 3261 14.2). A
delayed-offer INVITE (no SDP) gets our offer in the 200 and the SRC's answer in the ACK
(RFC 3264 section 5, RFC 3261 13.2.1).

The session ends (:class:`EndSession`) at the SRC's BYE, at a BYE of ours (shutdown, no ACK
within 64*T1, session expiry per RFC 4028 section 10, no RTP for the inactivity timeout,
found by :meth:`SrsCore.due`), built through the dialog's route set (:mod:`.routing`,
:mod:`..sip.dialog`).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import RemoteProtocolError
from ..sip.events import Address
from ..sip.message import SipRequest, SipResponse, make_response, uas_precheck
from ..sip.multipart import split_body
from ..sip.sdp import SessionDescription
from ..sip.uri import SipUri, parse_uri
from ..storage import rows
from ..storage.index import DeclinedCall
from ..wiretext import escape
from .admission import (
    Admission,
    Budgets,
    Origin,
    SourcePolicy,
    TokenBuckets,
    TrustedProxies,
    is_siprec_invite,
)
from .answer import DELAYED_OFFER_FORMATS, AcceptedStream, build_answer, build_offer, choose_codec
from .metadata import RecordingMetadata
from .participants import (
    Decision,
    Party,
    apply_update,
    assign_senders,
    joined,
    participants_of,
    roles,
    uri_of,
)
from .routing import bye_for, dialog_of
from .session import Leg, OfferedStream, RecordingSession, parse_offer
from .streams import StreamFate, StreamPlan, count, map_offer

__all__ = [
    "ACK_WAIT_T1",
    "AckIn",
    "AckTimedOut",
    "Action",
    "ApplyMedia",
    "AskPolicy",
    "CancelIn",
    "CloseLegs",
    "Counters",
    "EndRequested",
    "EndSession",
    "Event",
    "Facts",
    "MediaApplied",
    "MediaFailed",
    "NOT_RECORDED",
    "NoteRefusal",
    "PolicyAnswered",
    "RequestIn",
    "Respond",
    "SaveManifest",
    "SendRequest",
    "SrsCore",
    "SrsSettings",
    "StartRecording",
    "WriteDeclined",
]

log = logging.getLogger("siprec_recorder.srs")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
KNOWN_METHODS = {"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "PRACK"}
SUPPORTED_EXTENSIONS = {"siprec", "timer", "replaces", "100rel"}
MIN_SE = 90  # seconds, RFC 4028 section 4
NOT_RECORDED = '399 - "not recorded"'  # every policy refusal says the same on the wire
CALL_ID_LIMIT = 256  # characters of a Call-ID kept in the index, manifest and logs
ACK_WAIT_T1 = 64  # T1s a 2xx waits for its ACK (Timer H, RFC 3261 section 17.2.1)
# Reasons for which the recording ends with its last packet, not with the session: we ended
# it ourselves for lack of media or signalling, not the SRC.
_ENDED_BY_SILENCE = ("rtp timeout", "session expired", "no ACK")


@dataclass(frozen=True, slots=True)
class SrsSettings:
    """What the SRS needs to know, handed in by ``app.py``."""

    advertised_address: str = "127.0.0.1"
    contact_host: str = "127.0.0.1"
    contact_port: int = 5060
    # The port of each transport's listener (a Contact on TCP names the TCP port); a
    # transport not listed uses ``contact_port``.
    contact_ports: tuple[tuple[str, int], ...] = ()
    channels: str = "mono"
    bitrate_kbps: int = 32
    mp3_quality: int = 7
    retention_years: int = 5
    inactivity_timeout: float = 30.0
    flush_interval: float = 1.0
    jitter_window: int = 64
    rtp_latch: bool = False
    max_sessions: int = 2000
    max_sessions_per_source: int = 1000
    allowed_sources: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    unauthorised_response: str = "403"
    rate_limit_per_source: float = 0.0
    rate_limit_burst: int = 100
    min_free_mb: int = 0
    country_code: str = "32"
    session_expires: int = 1800
    t1: float = 0.5  # RFC 3261 T1, as the SIP core's transactions use it
    accept_plain_invite: bool = False
    budgets: Budgets = field(default_factory=Budgets)
    srtp_suites: tuple[str, ...] = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


@dataclass(slots=True)
class Counters:
    """Prometheus counters of the SRS (exposed by the metrics endpoint)."""

    invites: int = 0
    accepted: int = 0
    declined: dict[str, int] = field(default_factory=dict)
    rejected: dict[int, int] = field(default_factory=dict)
    emergency: int = 0
    unauthorised: int = 0
    finished: int = 0
    failed: int = 0
    finalize_seconds: float = 0.0
    # (budget, cause) -> budget refusals that left no index row; cause "not-governed" (a
    # call the policy would not record) or "row-limit" (past the source's row budget).
    refusals_not_indexed: dict[tuple[str, str], int] = field(default_factory=dict)


# ---------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Facts:
    """What the driver knows of the node when a request arrives (None: not known/checked)."""

    free_mb: float | None = None
    ports_available: int | None = None
    key_id: str | None = None  # the encryption key a new recording is written with


@dataclass(frozen=True, slots=True)
class RequestIn:
    """A request from the SIP core (``sip.events.RequestReceived``), with the node's facts."""

    request: SipRequest
    transaction: Hashable
    source: Address
    facts: Facts = Facts()


@dataclass(frozen=True, slots=True)
class AckIn:
    """The ACK of a 2xx of ours."""

    request: SipRequest


@dataclass(frozen=True, slots=True)
class CancelIn:
    """A CANCEL of an INVITE not answered yet (the SIP core answered the CANCEL itself)."""

    transaction: Hashable
    cancel: SipRequest


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """A transaction ended without what it waited for (for our 2xx: the ACK)."""

    transaction: Hashable


@dataclass(frozen=True, slots=True)
class PolicyAnswered:
    """The outcome of :class:`AskPolicy`."""

    transaction: Hashable
    decision: Decision


@dataclass(frozen=True, slots=True)
class MediaApplied:
    """The outcome of :class:`ApplyMedia`: the answer, one entry per offered m-line."""

    transaction: Hashable
    answer: tuple[AcceptedStream, ...]


@dataclass(frozen=True, slots=True)
class MediaFailed:
    """:class:`ApplyMedia` of a new INVITE failed (ports exhausted, a bind failure)."""

    transaction: Hashable
    error: str


@dataclass(frozen=True, slots=True)
class EndRequested:
    """The driver ends a session (shutdown, or a :class:`Tick`'s finding under its lock)."""

    call_id: str
    reason: str


Event = (
    RequestIn
    | AckIn
    | CancelIn
    | AckTimedOut
    | PolicyAnswered
    | MediaApplied
    | MediaFailed
    | EndRequested
)


# ---------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class Respond:
    """Send ``response`` in server transaction ``transaction``."""

    transaction: Hashable
    response: SipResponse


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send an in-dialog request of ours (a BYE) to ``destination``."""

    request: SipRequest
    destination: Address


@dataclass(frozen=True, slots=True)
class AskPolicy:
    """Ask the policy whether to record; answer with :class:`PolicyAnswered`."""

    transaction: Hashable
    aors: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class ApplyMedia:
    """Carry out the mapper's plan on ``session``'s legs (open, keep, close), then answer
    :class:`MediaApplied` (or, for a new session, :class:`MediaFailed`)."""

    transaction: Hashable
    session: RecordingSession
    plans: tuple[StreamPlan, ...]
    initial: bool  # a new session: any failure fails it all; else per m-line


@dataclass(frozen=True, slots=True)
class CloseLegs:
    """Stop receiving on ``legs`` of ``session`` (their ports go back to the pool)."""

    session: RecordingSession
    legs: tuple[Leg, ...]  # () for all of them


@dataclass(frozen=True, slots=True)
class WriteDeclined:
    """Write the row of a call the policy declined (before the 403 goes out)."""

    row: DeclinedCall


@dataclass(frozen=True, slots=True)
class NoteRefusal:
    """Leave a row for a call refused before a session existed, in the background, as far
    as :meth:`SrsCore.refusal_row` allows once the policy said whether it governs it."""

    request: SipRequest
    source: Address
    reason: str
    at: float
    budget: str | None = None
    decision: Decision | None = None
    participants: tuple[Party, ...] = ()


@dataclass(frozen=True, slots=True)
class StartRecording:
    """Create ``session``'s spool and index row (the 200 OK is already on its way)."""

    session: RecordingSession


@dataclass(frozen=True, slots=True)
class SaveManifest:
    """Write ``session``'s manifest and participants again (they changed)."""

    session: RecordingSession


@dataclass(frozen=True, slots=True)
class EndSession:
    """``session`` is over: close its legs (after ``grace`` seconds), finalise its spool."""

    session: RecordingSession
    ended_at: float
    reason: str | None
    grace: bool


Action = (
    Respond
    | SendRequest
    | AskPolicy
    | ApplyMedia
    | CloseLegs
    | WriteDeclined
    | NoteRefusal
    | StartRecording
    | SaveManifest
    | EndSession
)


@dataclass(slots=True)
class _Invite:
    """A new INVITE between its screening and its final answer."""

    request: SipRequest
    source: Address
    origin: Origin | None
    host: str
    local_tag: str
    at: float
    key_id: str | None
    streams: list[OfferedStream]
    metadata: RecordingMetadata | None
    participants: list[Party]
    delayed: bool
    decision: Decision | None = None
    session: RecordingSession | None = None


class SrsCore:
    """The sessions and budgets of a Session Recording Server, sans I/O."""

    # Index rows of budget refusals, per source and budget: a burst, then a steady rate.
    REFUSAL_ROWS_BURST = 20
    REFUSAL_ROWS_PER_SECOND = 1.0

    def __init__(self, settings: SrsSettings, *, has_policy: bool) -> None:
        self.settings = settings
        self.has_policy = has_policy
        self.sessions: dict[str, RecordingSession] = {}
        self.sources = SourcePolicy(
            settings.allowed_sources, settings.rate_limit_per_source, settings.rate_limit_burst
        )
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.counters = Counters()
        self.admission = Admission(settings.budgets)
        self.refusal_rows = TokenBuckets(self.REFUSAL_ROWS_BURST, self.REFUSAL_ROWS_PER_SECOND)
        self.closing = False
        self.per_source: dict[str, int] = {}
        self.pending_invites: dict[Hashable, str] = {}  # transaction -> call-id of its 2xx
        self.cancelled: dict[Hashable, SipRequest] = {}  # INVITE transaction -> its CANCEL
        self._invites: dict[Hashable, _Invite] = {}  # new INVITEs not answered finally yet
        self._offers: dict[Hashable, tuple[SipRequest, RecordingSession, bool]] = {}
        self._not_indexed_logged: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ entry point
    def handle(self, event: Event, now: float) -> list[Action]:
        """The actions ``event`` at ``now`` calls for, in the order to carry them out."""
        match event:
            case RequestIn(request=req, transaction=tx, source=src, facts=facts):
                return self._on_request(req, tx, src, facts, now)
            case AckIn(request=req):
                return self._on_ack(req, now)
            case CancelIn(transaction=tx, cancel=cancel):
                # Not answered here: the INVITE's own flow looks for this mark before it
                # answers, and answers 487 instead (RFC 3261 section 9.2).
                if tx in self._invites:
                    self.cancelled[tx] = cancel
                return []
            case AckTimedOut(transaction=tx):
                call_id = self.pending_invites.pop(tx, None)
                s = self.sessions.get(call_id or "")
                if s is not None and not s.acked:
                    log.warning("call %s: no ACK for our 200 OK, ending it", s.call_id)
                    return self.end(s.call_id, "no ACK", now, send_bye=True)
                return []
            case PolicyAnswered(transaction=tx, decision=decision):
                return self._on_decision(tx, decision, now)
            case MediaApplied(transaction=tx, answer=answer):
                return self._on_media(tx, list(answer), now)
            case MediaFailed(transaction=tx, error=error):
                return self._on_media_failed(tx, error)
            case EndRequested(call_id=call_id, reason=reason):
                return self.end(call_id, reason, now, send_bye=True)
        return []

    def respond(
        self,
        tx: Hashable,
        req: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Respond:
        """A response, with the bookkeeping every response does (counters, CANCEL marks)."""
        if status >= 300:
            self.counters.rejected[status] = self.counters.rejected.get(status, 0) + 1
        if status >= 200:
            self.cancelled.pop(tx, None)  # a CANCEL after the final answer changes nothing
            self._invites.pop(tx, None)
        response = make_response(
            req,
            status,
            reason,
            to_tag=to_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        return Respond(tx, response)

    def origin_of(self, req: SipRequest, src: Address) -> Origin | None:
        """The SRC behind a trusted proxy (None: ``src`` is the SRC, or nothing vouched)."""
        if not self.proxies:
            return None
        try:
            vias = req.vias
        except RemoteProtocolError:
            return None  # a hop we cannot read vouches for nobody
        return self.proxies.origin_behind(src.host, vias)

    def cannot_take_calls(self, facts: Facts) -> str | None:
        """Why this node would refuse a new call now (None: it can take one)."""
        if self.closing:
            return "recorder shutting down"
        if len(self.sessions) >= self.settings.max_sessions:
            return "recorder at capacity"
        if facts.ports_available is not None and facts.ports_available < 2:
            return "no RTP ports free"  # a call takes one port per leg
        if self._storage_low(facts):
            return "recorder storage full"
        return None

    def _storage_low(self, facts: Facts) -> bool:
        low = self.settings.min_free_mb
        return bool(low) and facts.free_mb is not None and facts.free_mb < low

    # ------------------------------------------------------------------ requests
    def _on_request(
        self, req: SipRequest, tx: Hashable, src: Address, facts: Facts, now: float
    ) -> list[Action]:
        method = req.method.upper()
        if method != "INVITE" or req.to_tag:
            # New INVITEs are checked after the source checks; everything else here.
            check = uas_precheck(req, supported_extensions=SUPPORTED_EXTENSIONS)
            if check is not None:
                status, reason, extra = check
                return [self.respond(tx, req, status, reason, headers=list(extra))]
        if method == "INVITE" and not req.to_tag:
            return self._on_invite(req, tx, src, facts, now)
        if method == "OPTIONS":
            return [self._on_options(req, tx, facts)]
        if method in ("INVITE", "UPDATE", "BYE", "INFO"):
            s = self.sessions.get(req.call_id or "")
            if s is None or not _in_dialog(method, req.to_tag, s.local_tag):
                return [self.respond(tx, req, 481, "Call/Transaction Does Not Exist")]
            if method == "BYE":
                actions: list[Action] = [self.respond(tx, req, 200, "OK", to_tag=s.local_tag)]
                return actions + self.end(s.call_id, None, now, send_bye=False)
            if method == "INFO":
                return [self.respond(tx, req, 200, "OK", to_tag=s.local_tag)]
            return self._on_offer(req, tx, s, now, invite=method == "INVITE")
        if method in KNOWN_METHODS:
            return [self.respond(tx, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])]
        return [self.respond(tx, req, 501, "Not Implemented", headers=[("Allow", ALLOW)])]

    def _on_options(self, req: SipRequest, tx: Hashable, facts: Facts) -> Respond:
        full = self.cannot_take_calls(facts)
        if full is not None:
            # The dispatcher's probe: a node that would refuse an INVITE says so here too,
            # so that calls go to another node before one is refused.
            return self.respond(
                tx,
                req,
                503,
                "Service Unavailable",
                headers=[("Retry-After", "10"), ("Warning", f'399 - "{full}"')],
            )
        return self.respond(
            tx,
            req,
            200,
            "OK",
            headers=[
                ("Allow", ALLOW),
                ("Accept", "application/sdp, application/rs-metadata+xml, multipart/mixed"),
                ("Supported", "siprec, timer"),
            ],
        )

    # ------------------------------------------------------------------ new INVITE
    def _on_invite(
        self, req: SipRequest, tx: Hashable, src: Address, facts: Facts, now: float
    ) -> list[Action]:
        self.counters.invites += 1
        origin = self.origin_of(req, src)
        host = origin.host if origin is not None else src.host
        local_tag = secrets.token_hex(8)  # (the SIP core already sent 100 Trying)
        flow = _Invite(req, src, origin, host, local_tag, now, facts.key_id, [], None, [], False)
        self._invites[tx] = flow
        refused = self._screen(flow, tx, facts, now)
        if refused is not None:
            return refused
        try:
            offer, metadata = parse_body(req)
        except RemoteProtocolError as exc:
            # A body we cannot parse is a bad request, whatever layer found it (RFC 3261
            # section 21.4.1); only size and media-type problems keep their own codes.
            code = exc.status_hint if exc.status_hint in (413, 415, 513) else 400
            return [self.respond(tx, req, code, _reason(exc.message), to_tag=local_tag)]
        flow.delayed = offer is None
        flow.metadata = metadata
        flow.streams = parse_offer(offer) if offer is not None else delayed_offer(metadata)
        flow.participants = participants_of(req.headers, metadata, self.settings.country_code)
        if not self.has_policy:
            return self._on_decision(tx, None, now)
        aors = tuple(p["aor"] for p in flow.participants if p["aor"])
        return [AskPolicy(tx, aors, datetime.fromtimestamp(now, UTC))]

    def _screen(self, flow: _Invite, tx: Hashable, facts: Facts, now: float) -> list[Action] | None:
        """The refusal of a new INVITE before its body is read (None: it goes on)."""
        req, host = flow.request, flow.host
        if (req.call_id or "") in self.sessions:
            # A retransmission with a new branch, or a forked copy.
            return [self.respond(tx, req, 482, "Loop Detected")]
        if not self.sources.allowed(host):
            log.info("INVITE from %s refused: not in allowed_sources", host)
            warning = ("Warning", '399 - "source not allowed"')
            return [self.respond(tx, req, 403, "Forbidden", headers=[warning])]
        check = uas_precheck(req, supported_extensions=SUPPORTED_EXTENSIONS)
        if check is not None:
            status, reason, extra = check
            return [self.respond(tx, req, status, reason, headers=list(extra))]
        if not self.settings.accept_plain_invite and not is_siprec_invite(req.headers, req.body):
            # Not a recording session (no +sip.src, no Require: siprec): what a scanner sends.
            self._count_declined("not-siprec")
            warning = ("Warning", NOT_RECORDED)
            return [self.respond(tx, req, 403, "Forbidden", headers=[warning])]
        if not self.sources.take(host, now):
            self.admission.count("invites-per-second")
            return [self._unavailable(tx, req, "5", '399 - "budget: invites-per-second"')]
        if self.closing or len(self.sessions) >= self.settings.max_sessions:
            self.admission.count("sessions")
            return [
                self._unavailable(tx, req, "10", '399 - "budget: sessions"'),
                self._note(flow, "recorder-at-capacity", now, budget="sessions"),
            ]
        if self.per_source.get(host, 0) >= self.settings.max_sessions_per_source:
            self.admission.count("sessions-per-source")
            return [
                self._unavailable(tx, req, "10", '399 - "budget: sessions-per-source"'),
                self._note(flow, "source-at-capacity", now, budget="sessions-per-source"),
            ]
        if self._storage_low(facts):
            log.error(
                "ALERT free space on the recordings share below %d MiB: declining new sessions",
                self.settings.min_free_mb,
            )
            self._count_declined("disk-full")
            return [
                self._unavailable(tx, req, "60", '399 - "recorder storage full"'),
                self._note(flow, "storage-low", now, budget="storage"),
            ]
        expires = session_expires_of(req)
        if expires is not None and expires < MIN_SE:
            # RFC 4028 section 8.1: too small an interval gets 422 with our Min-SE.
            min_se = ("Min-SE", str(MIN_SE))
            return [self.respond(tx, req, 422, "Session Interval Too Small", headers=[min_se])]
        return None

    def _unavailable(self, tx: Hashable, req: SipRequest, retry: str, warning: str) -> Respond:
        headers = [("Retry-After", retry), ("Warning", warning)]
        return self.respond(tx, req, 503, "Service Unavailable", headers=headers)

    def _on_decision(self, tx: Hashable, decision: Decision | None, now: float) -> list[Action]:
        flow = self._invites.get(tx)
        if flow is None:
            return []
        req, local_tag = flow.request, flow.local_tag
        flow.decision = decision
        if decision is not None and not decision.record:
            return self._decline(tx, flow, decision, now)
        plans = map_offer(flow.streams)
        opening = count(plans, StreamFate.OPEN)
        if not opening:
            warning = ("Warning", '304 - "no audio stream we can record"')
            return [
                self.respond(
                    tx, req, 488, "Not Acceptable Here", to_tag=local_tag, headers=[warning]
                )
            ]
        refusal = self.admission.check(flow.host, opening)
        if refusal is not None:
            log.info("INVITE from %s refused: budget %s", flow.host, refusal.budget)
            return [
                self.respond(
                    tx,
                    req,
                    refusal.status,
                    refusal.reason_phrase,
                    to_tag=local_tag,
                    headers=refusal.headers,
                ),
                self._note(flow, f"budget: {refusal.budget}", now, budget=refusal.budget),
            ]
        flow.session = self._new_session(flow, now)
        return [ApplyMedia(tx, flow.session, tuple(plans), initial=True)]

    def _decline(self, tx: Hashable, flow: _Invite, decision: Decision, now: float) -> list[Action]:
        req = flow.request
        self._count_declined(decision.reason)
        # An operator asking "why was this call not recorded?" starts at the log.
        log.info(
            "call %r from %s not recorded (403): %s", req.call_id, flow.source.host, decision.reason
        )
        # The reason stays in the index row and the counters, not on the wire.
        forbidden = self.respond(
            tx, req, 403, "Forbidden", to_tag=flow.local_tag, headers=[("Warning", NOT_RECORDED)]
        )
        if decision.emergency:
            # Nothing of an emergency call is kept but the counter; on the wire it looks like
            # every other refusal, so that a scanner learns nothing about the numbers.
            self.counters.emergency += 1
            return [forbidden]
        row = self.declined_row(req, flow.source, flow.participants, decision, decision.reason, now)
        return [WriteDeclined(row), forbidden]

    def _new_session(self, flow: _Invite, now: float) -> RecordingSession:
        req, src, participants = flow.request, flow.source, flow.participants
        recorded, other, direction = roles(participants, flow.decision)
        s = RecordingSession(
            rec_id=uuid.uuid4().hex,
            call_id=req.call_id or "",
            remote_tag=req.from_tag or "",
            local_tag=flow.local_tag,
            source=src,
            remote_target=remote_target(req, src),
            remote_uri=req.headers.get("From") or "",
            local_uri=req.headers.get("To") or "",
            started_at=now,
            origin=flow.origin,
            metadata=flow.metadata,
            participants=participants,
            recorded_number=recorded,
            other_number=other,
            direction=direction,
            beep=bool(flow.decision.beep) if flow.decision is not None else False,
            spool=None,
            sdp_session_id=int(now),
        )
        s.key_id = flow.key_id
        s.dialog = dialog_of(req, flow.local_tag)
        s.delayed_offer = flow.delayed
        s.participant_history = joined(participants, now)
        return s

    def _on_media_failed(self, tx: Hashable, error: str) -> list[Action]:
        flow = self._invites.get(tx)
        if flow is None or flow.session is None:
            return []
        log.error(
            "call %s: cannot open media: %s", escape(flow.session.call_id, CALL_ID_LIMIT), error
        )
        self.admission.count("rtp-ports")
        warning = ("Retry-After", "10"), ("Warning", '399 - "budget: rtp-ports"')
        return [
            CloseLegs(flow.session, ()),
            self.respond(
                tx,
                flow.request,
                503,
                "Service Unavailable",
                to_tag=flow.local_tag,
                headers=list(warning),
            ),
        ]

    def _on_media(self, tx: Hashable, answer: list[AcceptedStream], now: float) -> list[Action]:
        flow = self._invites.get(tx)
        if flow is None:
            return self._on_offer_media(tx, answer)
        s = flow.session
        if s is None:
            return []
        req, host = flow.request, flow.host
        s.ports_held = len(s.legs)
        self.admission.hold(host, s.ports_held)
        assign_senders(s.legs, s.participants, s.metadata)
        s.session_expires = session_expires_of(req)
        s.refreshed_at = now
        s.last_answer = answer
        if self.cancelled.pop(tx, None) is not None:
            self.admission.release(host, s.ports_held)
            log.info("call %s: cancelled by the SRC before it was answered", s.call_id)
            return [
                CloseLegs(s, ()),
                self.respond(tx, req, 487, "Request Terminated", to_tag=flow.local_tag),
                self._note(flow, "cancelled", now),
            ]
        # Answer first: the signalling path never waits on the disk. The spool and the index
        # row are created right after, off the loop; the flusher skips the session until its
        # spool exists (packets wait in the legs' buffers), and the end of the call waits for
        # it. A crash in between leaves a spool without a row, which recovery indexes.
        s.started_at = now
        self.sessions[s.call_id] = s
        self.per_source[host] = self.per_source.get(host, 0) + 1
        self.pending_invites[tx] = s.call_id
        self.counters.accepted += 1
        log.info(
            "call %s: recording %s (%s legs, recorded %s, other %s)",
            s.call_id,
            s.rec_id,
            len(s.legs),
            s.recorded_number,
            s.other_number,
        )
        return [self._answer(req, tx, s), StartRecording(s)]

    # ------------------------------------------------------------------ mid-call offers
    def _on_offer(
        self, req: SipRequest, tx: Hashable, s: RecordingSession, now: float, *, invite: bool
    ) -> list[Action]:
        """A re-INVITE or UPDATE: new SDP, new metadata, a session refresh, or all three."""
        if invite and s.invite_pending:
            return [self.respond(tx, req, 491, "Request Pending", to_tag=s.local_tag)]
        try:
            offer, metadata = parse_body(req)
        except RemoteProtocolError as exc:
            code = exc.status_hint if exc.status_hint in (413, 415, 513) else 400
            return [self.respond(tx, req, code, _reason(exc.message), to_tag=s.local_tag)]
        plans = map_offer(parse_offer(offer), s.legs) if offer is not None else []
        if offer is not None:
            refusal = self._refuse_added_streams(req, tx, s, plans)
            if refusal is not None:
                return [refusal]  # the session, its legs and its metadata stay as they were
        s.refreshed_at = now
        se = session_expires_of(req)
        if se:
            s.session_expires = se
        if metadata is not None:
            self._update_metadata(s, metadata, now)
        if offer is None:
            # A metadata-only update (or a session refresh): answer with the SDP we have.
            answer = (
                self._answer(req, tx, s)
                if invite
                else self.respond(tx, req, 200, "OK", to_tag=s.local_tag)
            )
            return [answer, SaveManifest(s)]
        s.invite_pending = True
        self._offers[tx] = (req, s, invite)
        return [ApplyMedia(tx, s, tuple(plans), initial=False)]

    def _on_offer_media(self, tx: Hashable, answer: list[AcceptedStream]) -> list[Action]:
        pending = self._offers.pop(tx, None)
        if pending is None:
            return []
        req, s, invite = pending
        s.invite_pending = False
        self._sync_ports_held(s)
        assign_senders(s.legs, s.participants, s.metadata)
        s.sdp_version += 1
        s.last_answer = answer
        if invite:
            self.pending_invites[tx] = s.call_id
            return [SaveManifest(s), self._answer(req, tx, s)]
        body = build_answer(
            origin_host=self.settings.advertised_address,
            session_id=s.sdp_session_id,
            session_version=s.sdp_version,
            connection_address=self.settings.advertised_address,
            streams=answer,
        )
        ok = self.respond(
            tx, req, 200, "OK", to_tag=s.local_tag, body=body, content_type="application/sdp"
        )
        return [SaveManifest(s), ok]

    def _refuse_added_streams(
        self, req: SipRequest, tx: Hashable, s: RecordingSession, plans: list[StreamPlan]
    ) -> Respond | None:
        """A new offer's added streams against the source's budgets: the 503 or 488 that
        names the budget, or None when they fit."""
        # An upper bound: SRTP without a suite we take is refused later.
        added, removed = count(plans, StreamFate.OPEN), count(plans, StreamFate.CLOSE)
        if not added:
            return None
        held = sum(1 for leg in s.legs if leg.endpoint is not None)
        refusal = self.admission.check_change(
            s.source_host, held - removed + added, added - removed
        )
        if refusal is None:
            return None
        log.info(
            "call %s: %s from %s refused: budget %s (%d streams held, %d added)",
            escape(s.call_id, CALL_ID_LIMIT),
            req.method,
            s.source_host,
            refusal.budget,
            held,
            added,
        )
        return self.respond(
            tx,
            req,
            refusal.status,
            refusal.reason_phrase,
            to_tag=s.local_tag,
            headers=refusal.headers,
        )

    def _sync_ports_held(self, s: RecordingSession, closing: Sequence[Leg] = ()) -> None:
        """Count the session's open legs against its source's port budget (after streams
        were added, or removed with ``port 0``: those ports return to the budget); legs in
        ``closing`` are about to close."""
        live = [leg for leg in s.legs if leg.endpoint is not None and not _among(leg, closing)]
        held = 0 if s.ended else len(live)
        if held > s.ports_held:
            self.admission.hold(s.source_host, held - s.ports_held)
        elif held < s.ports_held:
            self.admission.release(s.source_host, s.ports_held - held)
        s.ports_held = held

    def _update_metadata(self, s: RecordingSession, update: RecordingMetadata, now: float) -> None:
        """Apply a metadata update (re-INVITE/UPDATE) and record who joined and who left."""
        merged = s.metadata.merge(update) if s.metadata is not None else update
        s.metadata = merged
        s.participants, events = apply_update(
            s.participants, update, merged, now, self.settings.country_code
        )
        s.participant_history.extend(events)
        assign_senders(s.legs, s.participants, s.metadata)
        if s.other_number is None:
            _r, s.other_number, _d = roles(s.participants, None)

    # ------------------------------------------------------------------ ACK
    def _on_ack(self, ack: SipRequest, now: float) -> list[Action]:
        s = self.sessions.get(ack.call_id or "")
        if s is None or s.acked:
            return []
        s.acked = True
        if not s.delayed_offer:
            return []
        # The SRC's answer to our offer came in the ACK: bind codecs and labels.
        answer = None
        try:
            answer, _md = parse_body(ack) if ack.body else (None, None)
        except RemoteProtocolError as exc:
            log.warning("call %s: bad SDP answer in ACK: %s", s.call_id, exc.message)
        if answer is None:
            log.warning("call %s: delayed offer but no SDP answer in the ACK; ending", s.call_id)
            return self.end(s.call_id, "no SDP answer in ACK", now, send_bye=True)
        streams = parse_offer(answer)
        closed: list[Leg] = []
        for leg in list(s.legs):
            st = streams[leg.index] if leg.index < len(streams) else None
            if st is None or st.port == 0:
                leg.direction = "inactive"
                closed.append(leg)
                continue
            if st.label is not None and leg.offered_label is None:
                leg.label = st.label
            if st.codec is not None:
                leg.codec = st.codec.encoding
            leg.direction = "inactive" if st.direction == "inactive" else "recvonly"
        self._sync_ports_held(s, closing=closed)
        assign_senders(s.legs, s.participants, s.metadata)
        actions: list[Action] = [CloseLegs(s, tuple(closed))] if closed else []
        return actions + [SaveManifest(s)]

    # ------------------------------------------------------------------ the end
    def due(self, now: float) -> list[tuple[str, str]]:
        """The sessions to end at ``now``, and why: RFC 4028 expiry, or no RTP for the
        inactivity timeout (not while every leg is on hold)."""
        out = []
        timeout = self.settings.inactivity_timeout
        for s in self.sessions.values():
            if not s.acked and now - s.started_at < ACK_WAIT_T1 * self.settings.t1:
                continue  # the INVITE transaction still waits for the ACK (Timer H)
            if s.session_expires and now - s.refreshed_at > s.session_expires:
                log.info("call %s: session expired (RFC 4028)", s.call_id)
                out.append((s.call_id, "session expired"))
            elif not s.all_on_hold() and now - s.last_media_at() > timeout:
                log.info("call %s: no RTP for %.0f s, ending", s.call_id, timeout)
                out.append((s.call_id, "rtp timeout"))
        return out

    def end(self, call_id: str, reason: str | None, now: float, *, send_bye: bool) -> list[Action]:
        """End session ``call_id`` (``reason`` None: the SRC's BYE); BYE it if asked."""
        s = self.sessions.pop(call_id, None)
        if s is None or s.ended:
            return []
        s.ended = True
        # The recording covers the session to its end (silence where media paused), except
        # when we ended it ourselves for lack of media or signalling: then it ends with the
        # last packet, not with our detection of the silence.
        s.extend_to_end = reason not in _ENDED_BY_SILENCE
        host = s.source_host
        self.admission.release(host, s.ports_held)
        s.ports_held = 0
        self.per_source[host] = max(0, self.per_source.get(host, 1) - 1)
        if self.per_source.get(host) == 0:
            self.per_source.pop(host, None)
        actions: list[Action] = []
        if send_bye:
            try:
                request, destination = bye_for(s, self.contact_hostport(s.source.transport))
                actions.append(SendRequest(request, destination))
            except Exception:
                log.exception("call %s: cannot send BYE", s.call_id)
        # The SRC's BYE can overtake its last RTP packets: keep listening a moment.
        grace = not send_bye and reason is None and not self.closing
        actions.append(EndSession(s, now, reason, grace))
        return actions

    # ------------------------------------------------------------------ refusal rows
    def _note(
        self, flow: _Invite, reason: str, now: float, *, budget: str | None = None
    ) -> NoteRefusal:
        return NoteRefusal(flow.request, flow.source, reason, now, budget, flow.decision)

    def refusal_needs_policy(self, note: NoteRefusal) -> tuple[bool, list[Party]] | None:
        """Before a refusal row: None when the source's row budget is spent (counted),
        else whether the policy must be asked (a budget refusal not decided yet) and the
        call's participants. The policy is asked only while the bucket has room, so a
        flood costs no database round trip per INVITE."""
        key = self._refusal_key(note)
        if note.budget is not None and not self.refusal_rows.ready(key, note.at):
            self._not_indexed(note.source, note.budget, "row-limit", note.at)
            return None
        cc = self.settings.country_code
        try:
            _offer, metadata = parse_body(note.request)
            participants = participants_of(note.request.headers, metadata, cc)
        except RemoteProtocolError:
            participants = participants_of(note.request.headers, None, cc)
        ask = note.budget is not None and note.decision is None and self.has_policy
        return ask, participants

    def refusal_row(
        self, note: NoteRefusal, participants: list[Party], decision: Decision | None
    ) -> DeclinedCall | None:
        """The ``declined`` row of a refused call, or None (then counted and logged).

        A refusal for a budget leaves a row only for a call the policy governs (one it would
        record), and at most :attr:`refusal_rows` rows per source and budget (a burst, then
        a steady rate). See the driver's module docstring for why.
        """
        if note.budget is not None and decision is not None and not decision.record:
            # Not a call the policy would record (an emergency call, an unlisted number
            # with unknown_numbers = "decline"): the counters carry it.
            self._not_indexed(note.source, note.budget, "not-governed", note.at)
            return None
        if note.budget is not None and not self.refusal_rows.take(self._refusal_key(note), note.at):
            self._not_indexed(note.source, note.budget, "row-limit", note.at)
            return None
        return self.declined_row(
            note.request, note.source, participants, decision, note.reason, note.at
        )

    def _refusal_key(self, note: NoteRefusal) -> tuple[str, str]:
        origin = self.origin_of(note.request, note.source)
        return (origin.host if origin is not None else note.source.host, note.budget or "")

    def _not_indexed(self, src: Address, budget: str, cause: str, now: float) -> None:
        key = (budget, cause)
        c = self.counters.refusals_not_indexed
        c[key] = c.get(key, 0) + 1
        last = self._not_indexed_logged.get((src.host, budget), 0.0)
        if now - last >= 60.0:
            self._not_indexed_logged[(src.host, budget)] = now
            log.warning(
                "refusals for budget %s from %s are not all indexed (%s; see "
                "siprec_refusals_not_indexed_total)",
                budget,
                src.host,
                cause,
            )
            if len(self._not_indexed_logged) > 10_000:
                self._not_indexed_logged.clear()

    def declined_row(
        self,
        req: SipRequest,
        src: Address,
        participants: Sequence[Party],
        decision: Decision | None,
        reason: str,
        now: float,
    ) -> DeclinedCall:
        recorded, other, direction = roles(participants, decision)
        origin = self.origin_of(req, src)
        return rows.declined_call(
            call_id=escape(req.call_id or "", CALL_ID_LIMIT),
            at=now,
            reason=reason,
            source=f"{src.transport}:{src.host}:{src.port}",
            origin=str(origin) if origin is not None else None,
            participants=participants,
            recorded_number=recorded,
            other_number=other,
            direction=direction,
        )

    def _count_declined(self, reason: str) -> None:
        self.counters.declined[reason] = self.counters.declined.get(reason, 0) + 1

    # ------------------------------------------------------------------ the answer
    def _answer(self, req: SipRequest, tx: Hashable, s: RecordingSession) -> Respond:
        """Our 200 OK: the answer (or, before a delayed offer's ACK, our offer)."""
        if s.delayed_offer and not s.acked:
            body = build_offer(
                origin_host=self.settings.advertised_address,
                session_id=s.sdp_session_id,
                session_version=s.sdp_version,
                connection_address=self.settings.advertised_address,
                streams=[(leg.port, leg.offered_label) for leg in s.legs],
            )
        else:
            body = build_answer(
                origin_host=self.settings.advertised_address,
                session_id=s.sdp_session_id,
                session_version=s.sdp_version,
                connection_address=self.settings.advertised_address,
                streams=s.last_answer,
            )
        transport = s.source.transport
        contact = f"<sip:srs@{self.contact_hostport(transport)};transport={transport}>"
        headers = [("Contact", contact), ("Allow", ALLOW), ("Supported", "siprec, timer")]
        if s.session_expires:
            headers.append(("Session-Expires", f"{int(s.session_expires)};refresher=uac"))
            headers.append(("Require", "timer"))
        return self.respond(
            tx,
            req,
            200,
            "OK",
            to_tag=s.local_tag,
            headers=headers,
            body=body,
            content_type="application/sdp",
        )

    def contact_hostport(self, transport: str) -> str:
        host = self.settings.contact_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = dict(self.settings.contact_ports).get(transport, self.settings.contact_port)
        return f"{host}:{port}"


# ---------------------------------------------------------------------------- helpers
def parse_body(req: SipRequest) -> tuple[SessionDescription | None, RecordingMetadata | None]:
    """The SDP offer and the RFC 7865 metadata of a request's body (each None if absent)."""
    if not req.body:
        return None, None
    parts = split_body(req.headers.get("Content-Type"), req.body)
    offer = None
    metadata = None
    for part in parts:
        ct = (part.content_type or "").split(";", 1)[0].strip().lower()
        if ct == "application/sdp" and offer is None:
            offer = SessionDescription.parse(part.body)
        elif ct in ("application/rs-metadata+xml", "application/rs-metadata") and metadata is None:
            metadata = RecordingMetadata.parse(part.body)
    return offer, metadata


def delayed_offer(metadata: RecordingMetadata | None) -> list[OfferedStream]:
    """The streams we offer to an INVITE without SDP: one per metadata stream, else one."""
    labels: list[str | None] = [None]
    if metadata is not None and metadata.streams:
        labels = [st.label for st in metadata.streams][:8]
    rtpmaps = dict(DELAYED_OFFER_FORMATS)
    formats = tuple(str(pt) for pt in rtpmaps)
    codec = choose_codec(formats, rtpmaps, {101: "0-15"})
    return [
        OfferedStream(
            index=i,
            media="audio",
            port=9,
            proto="RTP/AVP",
            formats=formats,
            label=label,
            direction="sendonly",
            rtpmaps=rtpmaps,
            fmtps={101: "0-15"},
            crypto=(),
            rtcp_mux=False,
            codec=codec,
        )
        for i, label in enumerate(labels)
    ]


def session_expires_of(req: SipRequest) -> float | None:
    """The Session-Expires interval a request asks for (RFC 4028), None if none."""
    value = req.headers.get("Session-Expires")
    if not value:
        return None
    try:
        return float(value.split(";", 1)[0].strip())
    except ValueError:
        return None


def remote_target(req: SipRequest, src: Address) -> str:
    """Where our in-dialog requests go: the Contact, else the From, else the source address
    (a malformed Contact must not make our own BYE unsendable)."""
    for header in ("Contact", "From"):
        uri = uri_of(req.headers.get(header))
        try:
            if uri and isinstance(parse_uri(uri), SipUri):
                return uri
        except RemoteProtocolError:
            continue
    host = f"[{src.host}]" if ":" in src.host else src.host
    return f"sip:{host}:{src.port}"


def _in_dialog(method: str, to_tag: str | None, local_tag: str) -> bool:
    """Whether a request of the session's Call-ID belongs to its dialog: an offer must name
    our tag; a BYE without one, or an INFO, is taken by Call-ID (some SRCs send them so)."""
    if method in ("INVITE", "UPDATE"):
        return to_tag == local_tag
    if method == "BYE":
        return not to_tag or to_tag == local_tag
    return True


def _reason(message: str) -> str:
    """A reason phrase from an error message: one printable line, bounded."""
    text = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in message)
    return " ".join(text.split())[:100] or "Bad Request"


def _among(leg: Leg, legs: Sequence[Leg]) -> bool:
    return any(leg is other for other in legs)
