"""The Session Recording Server: SIP events in, recording sessions out (RFC 7866).

Theory of operation: the SIP layer hands us typed events (``RequestReceived``,
``AckReceived``, ``InviteCancelled``, ``TransactionTimedOut``). Each dialog's events are
handled in order, one at a time (a lock per Call-ID); different dialogs run concurrently.

A new INVITE is checked (source, rate, capacity, disk), answered ``100 Trying``, its body
split (SDP offer + RFC 7865 metadata), the participants worked out (metadata, else From/To),
and the policy asked. A declined call gets ``403`` with a ``Warning`` that names the reason
and leaves an index row saying why (emergency calls leave only a counter). An accepted call
gets an index row in state ``recording``, a spool, one RTP socket per accepted m-line and a
``200 OK`` whose SDP echoes every label ``recvonly``.

About once a second a flusher moves each leg's released packets into its spool file and
fsyncs it (in a thread, off the loop), and ends sessions whose media stopped for longer than
the inactivity timeout (sending a BYE to the SRC). At BYE, CANCEL, timeout or expiry the
session's sockets close, the spool is flushed one last time, and a worker process renders the
MP3 (:mod:`.finalize`); the index row is then completed. Nothing here waits on media work.

Budget refusals (sessions, sessions per source, RTP ports per source, media lines, storage;
see :mod:`.admission`) are counted by budget name, and leave ``declined`` index rows only as
far as compliance needs them and a hostile source cannot turn them into a flood of rows:

* a row only for a call the policy governs, i.e. one it would record now (a listed number,
  or any number with ``unknown_numbers = "record"``): a regulated call refused for capacity
  must stay visible in ``report completeness``; a call the policy would not record (an
  emergency number, an unlisted one under ``"decline"``) was never going to be recorded, so
  the refusal costs it nothing and is only counted;
* at most :attr:`SessionRecordingServer.REFUSAL_ROWS_BURST` rows per source and budget, then
  :attr:`~SessionRecordingServer.REFUSAL_ROWS_PER_SECOND` (a token bucket): far above what a
  real SRC offers while one of its budgets is exhausted for a minute, and a ceiling on what
  a greedy or hostile one can write. Past it a refusal is counted in
  ``siprec_refusals_not_indexed_total{budget, cause="row-limit"}``, with one warning a minute
  per source and budget in the log, so the gap itself is visible. The policy is asked only
  while the bucket has room, so a flood costs no database round trip per INVITE.

Why not one aggregated row per source, budget and interval with a count: the completeness
report lists calls (number, time, reason) for the compliance officer, and an aggregate row has
no number to list; a count of refusals belongs in the metrics, which already have it. A
re-INVITE or UPDATE refused for a budget leaves no row: the session goes on recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..phone import normalize_number, user_part
from ..sip.events import (
    AckReceived,
    InviteCancelled,
    RequestReceived,
    TransactionTimedOut,
)
from ..sip.message import SipRequest, make_response, parse_message, uas_precheck
from ..sip.multipart import split_body
from ..sip.sdp import SessionDescription
from ..sip.uri import SipUri, parse_uri
from ..storage import rows
from ..storage.index import DeclinedCall, NewRecording, RecordingNotFound
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
from .finalize import finalize_spool
from .metadata import RecordingMetadata
from .routing import bye_for, dialog_of
from .session import Leg, OfferedStream, RecordingSession, parse_offer
from .streams import (
    StreamFate,
    StreamPlan,
    accepted,
    choose_leg,
    count,
    map_offer,
    refresh_leg,
    refused,
)

__all__ = ["SrsSettings", "SessionRecordingServer"]

log = logging.getLogger("siprec_recorder.srs")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
KNOWN_METHODS = {
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "REFER",
    "PRACK",
}
SUPPORTED_EXTENSIONS = {"siprec", "timer", "replaces", "100rel"}
MIN_SE = 90  # seconds, RFC 4028 section 4
NOT_RECORDED = '399 - "not recorded"'  # every policy refusal says the same on the wire
CALL_ID_LIMIT = 256  # characters of a Call-ID kept in the index, manifest and logs
ACK_WAIT_T1 = 64  # T1s a 2xx waits for its ACK (Timer H, RFC 3261 section 17.2.1)
DISK_CHECK_INTERVAL = 1.0  # seconds a reading of the free space stays current


class FreeSpace:
    """Free space on the recordings share, as a fact the admission of a call is given.

    ``statvfs`` on a network share can block for as long as the server takes to answer, so
    it runs in a thread, at most once per :data:`DISK_CHECK_INTERVAL` however many INVITEs
    ask; callers that ask while a reading is under way share it.
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self._clock = clock
        self._value: float | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[float] | None = None

    async def free_mb(self) -> float:
        if self._value is not None and self._clock() - self._read_at < DISK_CHECK_INTERVAL:
            return self._value
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> float:
        try:
            value = await asyncio.to_thread(self._statvfs)
            self._value, self._read_at = value, self._clock()
            return value
        finally:
            self._reading = None

    def _statvfs(self) -> float:
        try:
            usage = shutil.disk_usage(self.root)
        except OSError:
            return 0.0  # an unreadable share takes no calls
        return usage.free / (1024 * 1024)


@dataclass(frozen=True, slots=True)
class SrsSettings:
    """What the SRS needs to know, handed in by ``app.py``."""

    rtp_address: str = "127.0.0.1"
    advertised_address: str = "127.0.0.1"
    contact_host: str = "127.0.0.1"
    contact_port: int = 5060
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


_URI_RE = re.compile(r"<([^>]*)>")


def _uri_of(name_addr: str | None) -> str:
    if not name_addr:
        return ""
    m = _URI_RE.search(name_addr)
    if m:
        return m.group(1).strip()
    return name_addr.split(";", 1)[0].strip()


def _remote_target(req: SipRequest, src: Any) -> str:
    """Where our in-dialog requests go: the Contact, else the From, else the source address
    (a malformed Contact must not make our own BYE unsendable)."""
    for header in ("Contact", "From"):
        uri = _uri_of(req.headers.get(header))
        try:
            if uri and isinstance(parse_uri(uri), SipUri):
                return uri
        except RemoteProtocolError:
            continue
    host = f"[{src.host}]" if ":" in src.host else src.host
    return f"sip:{host}:{src.port}"


def _reason(message: str) -> str:
    """A reason phrase from an error message: one printable line, bounded."""
    text = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in message)
    return " ".join(text.split())[:100] or "Bad Request"


def _display_of(name_addr: str | None) -> str | None:
    if not name_addr or "<" not in name_addr:
        return None
    name = name_addr.split("<", 1)[0].strip().strip('"').strip()
    return name or None


class SessionRecordingServer:
    """The SRS. Feed it SIP events with :meth:`on_event`; it answers through ``sip``."""

    BYE_GRACE = 0.2  # seconds the legs keep receiving after the SRC's BYE
    # Waits between attempts to index a finished recording (about five minutes in all).
    INDEX_RETRY_DELAYS: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15, 30, 60, 60, 60, 60)
    # Set by app.py when transcription is on: where the finaliser leaves each leg's audio,
    # and what hears of every recording once it is indexed (the transcription queue).
    leg_audio_dir: str | None = None
    on_indexed: Callable[[str], Any] | None = None
    # Index rows of budget refusals, per source and budget: a burst, then a steady rate.
    REFUSAL_ROWS_BURST = 20
    REFUSAL_ROWS_PER_SECOND = 1.0

    def __init__(
        self,
        *,
        sip: Any,
        index: Any,
        policy: Any | None,
        spool: Any,
        recordings_root: Path,
        ports: Any,
        executor: Executor | None,
        settings: SrsSettings,
        receiver_factory: Callable[..., Any],
        keyring: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sip = sip
        self.index = index
        self.policy = policy
        self.spool = spool
        self.recordings_root = Path(recordings_root)
        self.ports = ports
        self.executor = executor
        self.settings = settings
        self.receiver_factory = receiver_factory
        self.keyring = keyring  # compliance.crypto.KeyRing: encrypt finished files at rest
        self.clock = clock
        self.sessions: dict[str, RecordingSession] = {}
        self.sources = SourcePolicy(
            settings.allowed_sources, settings.rate_limit_per_source, settings.rate_limit_burst
        )
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.counters = Counters()
        self.admission = Admission(settings.budgets)
        self.refusal_rows = TokenBuckets(self.REFUSAL_ROWS_BURST, self.REFUSAL_ROWS_PER_SECOND)
        self.free_space = FreeSpace(self.recordings_root)
        self._not_indexed_logged: dict[tuple[str, str], float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finalizing: set[asyncio.Task[Any]] = set()
        self._per_source: dict[str, int] = {}
        self._pending_invites: dict[Any, str] = {}  # transaction -> call-id of a new INVITE
        self._cancelled: dict[Any, SipRequest] = {}  # INVITE transaction -> its CANCEL
        self._inviting: set[Any] = set()  # new INVITEs not answered finally yet
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = asyncio.Event()  # set by stop(): cuts short the waits of retries

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Recover what a crash left, then start the flusher."""
        await self.recover()
        self._flusher = asyncio.create_task(self._flush_loop(), name="srs-flusher")

    async def stop(self) -> None:
        """End every session as if it had received a BYE, and wait for the files."""
        self._closing = True
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        for call_id in list(self.sessions):
            await self._end(call_id, reason="recorder shutdown", send_bye=True)
        await self.drain()

    async def drain(self) -> None:
        """Wait until every finalisation under way is done."""
        while self._finalizing or self._tasks:
            await asyncio.gather(*list(self._finalizing | self._tasks), return_exceptions=True)

    def source_allowed(self, address: Any) -> bool:
        """For the SIP transport's filter: False keeps the message away from the SIP core.

        Sources outside ``allowed_sources`` never create a transaction, a dialog or an
        index row: :meth:`on_rejected_source` answers them statelessly or not at all. A
        trusted proxy passes here; its INVITEs are checked against the SRC behind it.
        """
        return self.sources.allowed(address.host) or self.proxies.trusts(address.host)

    def _origin(self, req: SipRequest, src: Any) -> Origin | None:
        """The SRC behind a trusted proxy (None: ``src`` is the SRC, or nothing vouched)."""
        if not self.proxies:
            return None
        try:
            vias = req.vias
        except RemoteProtocolError:
            return None  # a hop we cannot read vouches for nobody
        return self.proxies.origin_behind(src.host, vias)

    def on_rejected_source(self, address: Any, data: bytes) -> None:
        """A message from a source not allowed: one stateless 403 (RFC 3261 section 8.2.7).

        No 100 Trying, no retransmission, ACKs ignored; with ``unauthorised_response =
        "silence"`` nothing at all. The 403s are rate-capped so that a spoofed flood cannot
        use the recorder as a reflector.
        """
        self.counters.unauthorised += 1
        if self.settings.unauthorised_response == "silence" or address.transport != "udp":
            return
        now = self.clock()
        if not self.sources.take_reject(now):
            return
        try:
            msg = parse_message(data)
        except RemoteProtocolError:
            return
        if not isinstance(msg, SipRequest) or msg.method in ("ACK", "CANCEL"):
            return
        resp = make_response(
            msg, 403, "Forbidden", headers=[("Warning", '399 - "source not allowed"')]
        )
        self.counters.rejected[403] = self.counters.rejected.get(403, 0) + 1
        self.sip.send_raw(resp.serialize(), address)

    # ------------------------------------------------------------------ events
    def on_event(self, event: Any) -> None:
        """Entry point from the SIP layer (synchronous; schedules the work)."""
        if isinstance(event, InviteCancelled):
            # Not queued behind the INVITE it cancels: the INVITE's handler looks for this
            # mark before it answers, and answers 487 instead (RFC 3261 section 9.2).
            if event.transaction in self._inviting:
                self._cancelled[event.transaction] = event.cancel
            return
        key = self._event_key(event)
        task = asyncio.create_task(self._dispatch(key, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event_key(self, event: Any) -> str:
        req = getattr(event, "request", None) or getattr(event, "cancel", None)
        if req is not None:
            return req.call_id or "?"
        tx = getattr(event, "transaction", None)
        return self._pending_invites.get(tx, "?")

    async def _dispatch(self, key: str, event: Any) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                await self._handle(event)
        except Exception:  # a bug must never take the receive loop down
            log.exception("error handling %s", type(event).__name__)
            if isinstance(event, RequestReceived) and event.request.method != "ACK":
                try:
                    self._respond(event.transaction, event.request, 500, "Server Internal Error")
                except Exception:
                    log.debug("could not answer 500", exc_info=True)
        finally:
            if not lock.locked() and key not in self.sessions:
                self._locks.pop(key, None)

    async def _handle(self, event: Any) -> None:
        match event:
            case RequestReceived(request=req, transaction=tx, source=src):
                await self._on_request(req, tx, src)
            case AckReceived(request=req):
                s = self.sessions.get(req.call_id or "")
                if s is not None and not s.acked:
                    s.acked = True
                    if s.delayed_offer:
                        await self._on_delayed_answer(s, req)
            case TransactionTimedOut(transaction=tx):
                call_id = self._pending_invites.pop(tx, None)
                s = self.sessions.get(call_id or "")
                if s is not None and not s.acked:
                    log.warning("call %s: no ACK for our 200 OK, ending it", s.call_id)
                    await self._end(s.call_id, reason="no ACK", send_bye=True)
            case _:
                pass

    def _respond(
        self, tx: Any, req: SipRequest, status: int, reason: str | None = None, **kw: Any
    ) -> None:
        if status >= 300:
            self.counters.rejected[status] = self.counters.rejected.get(status, 0) + 1
        if status >= 200:
            self._cancelled.pop(tx, None)  # a CANCEL after the final answer changes nothing
            self._inviting.discard(tx)
        self.sip.respond(tx, make_response(req, status, reason, **kw))

    async def _on_request(self, req: SipRequest, tx: Any, src: Any) -> None:
        method = req.method.upper()
        if method != "INVITE" or req.to_tag:
            # New INVITEs are checked after the source checks; everything else here.
            check = uas_precheck(req, supported_extensions=SUPPORTED_EXTENSIONS)
            if check is not None:
                status, reason, extra = check
                self._respond(tx, req, status, reason, headers=list(extra))
                return
        if method == "INVITE":
            if req.to_tag:
                await self._on_reinvite(req, tx, src)
            else:
                await self._on_invite(req, tx, src)
        elif method == "BYE":
            s = self.sessions.get(req.call_id or "")
            if s is None or (req.to_tag and req.to_tag != s.local_tag):
                self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
                return
            self._respond(tx, req, 200, "OK", to_tag=s.local_tag)
            await self._end(s.call_id, reason=None, send_bye=False)
        elif method == "OPTIONS":
            full = await self.cannot_take_calls()
            if full is not None:
                # The dispatcher's probe: a node that would refuse an INVITE says so here
                # too, so that calls go to another node before one is refused.
                self._respond(
                    tx,
                    req,
                    503,
                    "Service Unavailable",
                    headers=[("Retry-After", "10"), ("Warning", f'399 - "{full}"')],
                )
                return
            self._respond(
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
        elif method == "UPDATE":
            await self._on_update(req, tx, src)
        elif method == "INFO":
            s = self.sessions.get(req.call_id or "")
            if s is None:
                self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            else:
                self._respond(tx, req, 200, "OK", to_tag=s.local_tag)
        elif method in KNOWN_METHODS:
            self._respond(tx, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])
        else:
            self._respond(tx, req, 501, "Not Implemented", headers=[("Allow", ALLOW)])

    async def cannot_take_calls(self) -> str | None:
        """Why this node would refuse a new call now (None: it can take one)."""
        if self._closing:
            return "recorder shutting down"
        if len(self.sessions) >= self.settings.max_sessions:
            return "recorder at capacity"
        available = getattr(self.ports, "available", None)
        if isinstance(available, int) and available < 2:  # a call takes one port per leg
            return "no RTP ports free"
        if await self._storage_low():
            return "recorder storage full"
        return None

    async def _storage_low(self) -> bool:
        """Free space below ``min_free_mb`` (read in a thread, at most once a second)."""
        if not self.settings.min_free_mb:
            return False
        return await self.free_space.free_mb() < self.settings.min_free_mb

    # ------------------------------------------------------------------ new INVITE

    async def _on_invite(self, req: SipRequest, tx: Any, src: Any) -> None:
        self.counters.invites += 1
        self._inviting.add(tx)
        origin = self._origin(req, src)
        host = origin.host if origin is not None else src.host
        now = self.clock()
        call_id = req.call_id or ""
        if call_id in self.sessions:  # a retransmission with a new branch, or a forked copy
            self._respond(tx, req, 482, "Loop Detected")
            return
        if not self.sources.allowed(host):
            log.info("INVITE from %s refused: not in allowed_sources", host)
            self._respond(
                tx, req, 403, "Forbidden", headers=[("Warning", '399 - "source not allowed"')]
            )
            return
        check = uas_precheck(req, supported_extensions=SUPPORTED_EXTENSIONS)
        if check is not None:
            status, reason, extra = check
            self._respond(tx, req, status, reason, headers=list(extra))
            return
        if not self.settings.accept_plain_invite and not is_siprec_invite(req.headers, req.body):
            # Not a recording session (no +sip.src, no Require: siprec): what a scanner sends.
            self.counters.declined["not-siprec"] = self.counters.declined.get("not-siprec", 0) + 1
            self._respond(tx, req, 403, "Forbidden", headers=[("Warning", NOT_RECORDED)])
            return
        if not self.sources.take(host, now):
            self.admission.count("invites-per-second")
            self._respond(
                tx,
                req,
                503,
                "Service Unavailable",
                headers=[("Retry-After", "5"), ("Warning", '399 - "budget: invites-per-second"')],
            )
            return
        if self._closing or len(self.sessions) >= self.settings.max_sessions:
            self.admission.count("sessions")
            self._respond(
                tx,
                req,
                503,
                "Service Unavailable",
                headers=[("Retry-After", "10"), ("Warning", '399 - "budget: sessions"')],
            )
            self._note_refusal(req, src, "recorder-at-capacity", now, budget="sessions")
            return
        if self._per_source.get(host, 0) >= self.settings.max_sessions_per_source:
            self.admission.count("sessions-per-source")
            self._respond(
                tx,
                req,
                503,
                "Service Unavailable",
                headers=[
                    ("Retry-After", "10"),
                    ("Warning", '399 - "budget: sessions-per-source"'),
                ],
            )
            self._note_refusal(req, src, "source-at-capacity", now, budget="sessions-per-source")
            return
        if await self._storage_low():
            log.error(
                "ALERT free space on %s below %d MiB: declining new sessions",
                self.recordings_root,
                self.settings.min_free_mb,
            )
            self.counters.declined["disk-full"] = self.counters.declined.get("disk-full", 0) + 1
            self._respond(
                tx,
                req,
                503,
                "Service Unavailable",
                headers=[("Retry-After", "60"), ("Warning", '399 - "recorder storage full"')],
            )
            self._note_refusal(req, src, "storage-low", now, budget="storage")
            return

        expires = self._session_expires(req)
        if expires is not None and expires < MIN_SE:
            # RFC 4028 section 8.1: too small an interval gets 422 with our Min-SE.
            self._respond(
                tx, req, 422, "Session Interval Too Small", headers=[("Min-SE", str(MIN_SE))]
            )
            return
        local_tag = secrets.token_hex(8)  # (the SIP core already sent 100 Trying)
        try:
            offer, metadata = self._parse_body(req)
        except RemoteProtocolError as exc:
            # A body we cannot parse is a bad request, whatever layer found it (RFC 3261
            # section 21.4.1); only size and media-type problems keep their own codes.
            code = exc.status_hint if exc.status_hint in (413, 415, 513) else 400
            self._respond(tx, req, code, _reason(exc.message), to_tag=local_tag)
            return
        delayed = offer is None
        streams = parse_offer(offer) if offer is not None else self._delayed_offer(metadata)
        participants = self._participants(req, metadata)
        aors = [p["aor"] for p in participants if p.get("aor")]
        decision = None
        if self.policy is not None:
            decision = await self.policy.decide(aors, datetime.fromtimestamp(now, UTC))
            if not decision.record:
                await self._decline(req, tx, local_tag, src, participants, decision, now)
                return
        plans = map_offer(streams)
        opening = count(plans, StreamFate.OPEN)
        if not opening:
            self._respond(
                tx,
                req,
                488,
                "Not Acceptable Here",
                to_tag=local_tag,
                headers=[("Warning", '304 - "no audio stream we can record"')],
            )
            return

        refusal = self.admission.check(host, opening)
        if refusal is not None:
            log.info("INVITE from %s refused: budget %s", host, refusal.budget)
            self._respond(
                tx,
                req,
                refusal.status,
                refusal.reason_phrase,
                to_tag=local_tag,
                headers=refusal.headers,
            )
            self._note_refusal(
                req, src, f"budget: {refusal.budget}", now, budget=refusal.budget, decision=decision
            )
            return
        recorded, other, direction = self._roles(participants, decision)
        rec_id = uuid.uuid4().hex
        session = RecordingSession(
            rec_id=rec_id,
            call_id=call_id,
            remote_tag=req.from_tag or "",
            local_tag=local_tag,
            source=src,
            remote_target=_remote_target(req, src),
            remote_uri=req.headers.get("From") or "",
            local_uri=req.headers.get("To") or "",
            started_at=now,
            origin=origin,
            metadata=metadata,
            participants=participants,
            recorded_number=recorded,
            other_number=other,
            direction=direction,
            beep=bool(decision.beep) if decision is not None else False,
            spool=None,
        )
        if self.keyring is not None and self.keyring.current is not None:
            session.key_id = self.keyring.current.key_id
        session.dialog = dialog_of(req, local_tag)
        session.delayed_offer = delayed
        session.participant_history = [
            {
                "participant_id": p.get("participant_id"),
                "aor": p.get("aor"),
                "number": p.get("number"),
                "event": "joined",
                "at": datetime.fromtimestamp(now, UTC).isoformat(),
            }
            for p in participants
        ]
        try:
            answer_streams = await self._open_legs(session, plans)
        except Exception as exc:  # ports exhausted, bind failures, bad crypto
            for leg in session.legs:
                self._close_leg(leg)
            log.error("call %s: cannot open media: %s", escape(call_id, CALL_ID_LIMIT), exc)
            self.admission.count("rtp-ports")
            self._respond(
                tx,
                req,
                503,
                "Service Unavailable",
                to_tag=local_tag,
                headers=[("Retry-After", "10"), ("Warning", '399 - "budget: rtp-ports"')],
            )
            return
        session.ports_held = len(session.legs)
        self.admission.hold(host, session.ports_held)
        self._assign_participants(session)
        session.session_expires = self._session_expires(req)
        session.refreshed_at = now
        session.last_answer = answer_streams
        if self._cancelled.pop(tx, None) is not None:
            self.admission.release(host, session.ports_held)
            for leg in session.legs:
                self._close_leg(leg)
            self._respond(tx, req, 487, "Request Terminated", to_tag=local_tag)
            self._note_refusal(req, src, "cancelled", now, decision=decision)
            log.info("call %s: cancelled by the SRC before it was answered", call_id)
            return
        # Answer first: the signalling path never waits on the disk. The spool and the index
        # row are created right after, off the loop; the flusher skips the session until its
        # spool exists (packets wait in the legs' buffers), and the end of the call waits for
        # it. A crash in between leaves a spool without a row, which recovery indexes.
        session.started_at = self.clock()
        self.sessions[call_id] = session
        self._per_source[host] = self._per_source.get(host, 0) + 1
        self._pending_invites[tx] = call_id
        self.counters.accepted += 1
        self._send_answer(req, tx, session)
        session.setup = asyncio.create_task(self._persist_start(session))
        log.info(
            "call %s: recording %s (%s legs, recorded %s, other %s)",
            call_id,
            rec_id,
            len(session.legs),
            recorded,
            other,
        )

    async def _persist_start(self, s: RecordingSession) -> None:
        manifest = self._manifest(s)
        try:
            s.spool = await asyncio.to_thread(self.spool.open_session, s.rec_id, manifest)
        except Exception as exc:
            # Already answered: the call cannot be refused any more, but it must not vanish.
            log.exception("call %s: spool could not be created", escape(s.call_id, 256))
            await self._index_unspooled(s, f"spool could not be created: {exc}")
            raise
        try:
            await self.index.create_recording(self._new_recording_row(s))
        except Exception:
            # The spool holds the call; recovery or the end of the call will index it.
            log.exception("call %s: cannot create index row yet", s.call_id)
            s.index_pending = True

    async def _index_unspooled(self, s: RecordingSession, reason: str) -> None:
        """A ``failed`` row for an answered call whose audio has nowhere to go."""
        try:
            await self.index.create_recording(self._new_recording_row(s))
            await self.index.finish_recording(
                s.rec_id, rows.failed_recording(self.clock(), escape(reason, 500))
            )
        except Exception:
            log.exception("call %s: cannot index the failed recording", escape(s.call_id, 256))

    def _note_refusal(
        self,
        req: SipRequest,
        src: Any,
        reason: str,
        now: float,
        *,
        budget: str | None = None,
        decision: Any = None,
    ) -> None:
        """Leave a ``declined`` row for a call refused before a session existed, so that the
        completeness report lists it (in the background: the 503 is already on its way).

        A refusal for a budget (``budget`` set) leaves a row only for a call the policy
        governs (one it would record), and at most :attr:`refusal_rows` rows per source and
        budget (a burst, then a steady rate); every other refusal is counted in
        :attr:`Counters.refusals_not_indexed` (on /metrics) and logged once a minute. The
        policy is asked only while the source's row budget has room, so a flood costs no
        database round trip per INVITE. See the module docstring for why.
        """
        origin = self._origin(req, src)
        key = (origin.host if origin is not None else src.host, budget or "")
        if budget is not None and not self.refusal_rows.ready(key, now):
            self._not_indexed(src, budget, "row-limit", now)
            return
        participants: list[dict[str, Any]] = []
        try:
            _offer, metadata = self._parse_body(req)
            participants = self._participants(req, metadata)
        except RemoteProtocolError:
            participants = self._participants(req, None)

        async def write() -> None:
            nonlocal decision
            try:
                if budget is not None and decision is None and self.policy is not None:
                    decision = await self._evaluate(participants, now)
                if budget is not None and decision is not None and not decision.record:
                    # Not a call the policy would record (an emergency call, an unlisted
                    # number with unknown_numbers = "decline"): the counters carry it.
                    self._not_indexed(src, budget, "not-governed", now)
                    return
                if budget is not None and not self.refusal_rows.take(key, now):
                    self._not_indexed(src, budget, "row-limit", now)
                    return
                recorded, other, direction = self._roles(participants, decision)
                row = self._declined_row(
                    req, src, participants, recorded, other, direction, reason, now
                )
                await self.index.record_declined(row)
            except Exception:
                log.exception(
                    "call %s: cannot write the refusal row (%s)",
                    escape(req.call_id or "", CALL_ID_LIMIT),
                    reason,
                )

        task = asyncio.create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evaluate(self, participants: list[dict[str, Any]], now: float) -> Any:
        """What the policy would decide of a refused call (not counted as a decision)."""
        aors = [p["aor"] for p in participants if p.get("aor")]
        policy = self.policy
        assert policy is not None
        ask = getattr(policy, "evaluate", None) or policy.decide
        return await ask(aors, datetime.fromtimestamp(now, UTC))

    def _not_indexed(self, src: Any, budget: str, cause: str, now: float) -> None:
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

    def _delayed_offer(self, metadata: RecordingMetadata | None) -> list[OfferedStream]:
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

    async def _on_delayed_answer(self, s: RecordingSession, ack: SipRequest) -> None:
        """The SRC's answer to our offer came in the ACK: bind codecs and labels."""
        answer = None
        try:
            _ctype = ack.headers.get("Content-Type")
            answer, _md = self._parse_body(ack) if ack.body else (None, None)
        except RemoteProtocolError as exc:
            log.warning("call %s: bad SDP answer in ACK: %s", s.call_id, exc.message)
        if answer is None:
            log.warning("call %s: delayed offer but no SDP answer in the ACK; ending", s.call_id)
            await self._end(s.call_id, reason="no SDP answer in ACK", send_bye=True)
            return
        streams = parse_offer(answer)
        for leg in list(s.legs):
            st = streams[leg.index] if leg.index < len(streams) else None
            if st is None or st.port == 0:
                leg.direction = "inactive"
                self._close_leg(leg)
                continue
            if st.label is not None and leg.offered_label is None:
                leg.label = st.label
            if st.codec is not None:
                leg.codec = st.codec.encoding
            leg.direction = "inactive" if st.direction == "inactive" else "recvonly"
        self._sync_ports_held(s)
        self._assign_participants(s)
        await self._save_manifest(s)

    def _session_expires(self, req: SipRequest) -> float | None:
        value = req.headers.get("Session-Expires")
        if not value:
            return None
        try:
            return float(value.split(";", 1)[0].strip())
        except ValueError:
            return None

    def _send_answer(self, req: SipRequest, tx: Any, s: RecordingSession) -> None:
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
        headers = [
            (
                "Contact",
                f"<sip:srs@{self._contact_hostport(s.source)};transport={s.source.transport}>",
            ),
            ("Allow", ALLOW),
            ("Supported", "siprec, timer"),
        ]
        if s.session_expires:
            headers.append(("Session-Expires", f"{int(s.session_expires)};refresher=uac"))
            headers.append(("Require", "timer"))
        self._respond(
            tx,
            req,
            200,
            "OK",
            to_tag=s.local_tag,
            headers=headers,
            body=body,
            content_type="application/sdp",
        )

    def _contact_hostport(self, source: Any) -> str:
        host = self.settings.contact_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.settings.contact_port}"

    def _parse_body(
        self, req: SipRequest
    ) -> tuple[SessionDescription | None, RecordingMetadata | None]:
        ctype = req.headers.get("Content-Type")
        if not req.body:
            return None, None
        parts = split_body(ctype, req.body)
        offer = None
        metadata = None
        for part in parts:
            ct = (part.content_type or "").split(";", 1)[0].strip().lower()
            if ct == "application/sdp" and offer is None:
                offer = SessionDescription.parse(part.body)
            elif (
                ct in ("application/rs-metadata+xml", "application/rs-metadata")
                and metadata is None
            ):
                metadata = RecordingMetadata.parse(part.body)
        return offer, metadata

    def _participants(self, req: SipRequest, md: RecordingMetadata | None) -> list[dict[str, Any]]:
        cc = self.settings.country_code
        out: list[dict[str, Any]] = []
        if md is not None and md.participants:
            return self._participants_from(md)
        # No metadata: the SRC's From/To describe the recorded call (RFC 7866 allows this
        # only as a fallback; many simple SRCs do it).
        for role, header in (("caller", "From"), ("callee", "To")):
            value = req.headers.get(header)
            uri = _uri_of(value)
            if not uri:
                continue
            name = _display_of(value)
            out.append(
                {
                    "participant_id": role,
                    "aor": escape(uri, 512),
                    "name": escape(name, 256) if name is not None else None,
                    "number": normalize_number(uri, country_code=cc),
                    "send": [],
                    "joined_at": None,
                    "left_at": None,
                }
            )
        return out

    def _roles(
        self, participants: list[dict[str, Any]], decision: Any
    ) -> tuple[str | None, str | None, str]:
        numbers = [
            p.get("number") or (user_part(p["aor"]) if p.get("aor") else None) for p in participants
        ]
        recorded = getattr(decision, "recorded_number", None) if decision is not None else None
        if recorded is None:
            recorded = next((n for n in numbers if n), None)
        other = next((n for n in numbers if n and n != recorded), None)
        direction = "unknown"
        if recorded is not None and numbers:
            direction = "out" if numbers[0] == recorded else "in"
        return recorded, other, direction

    async def _decline(
        self,
        req: SipRequest,
        tx: Any,
        local_tag: str,
        src: Any,
        participants: list[dict[str, Any]],
        decision: Any,
        now: float,
    ) -> None:
        reason = decision.reason
        self.counters.declined[reason] = self.counters.declined.get(reason, 0) + 1
        # An operator asking "why was this call not recorded?" starts at the log.
        log.info("call %r from %s not recorded (403): %s", req.call_id, src.host, reason)
        if decision.emergency:
            self.counters.emergency += 1
            # Nothing of an emergency call is kept but the counter; on the wire it looks like
            # every other refusal, so that a scanner learns nothing about the numbers.
            self._respond(
                tx, req, 403, "Forbidden", to_tag=local_tag, headers=[("Warning", NOT_RECORDED)]
            )
            return
        recorded, other, direction = self._roles(participants, decision)
        try:
            await self.index.record_declined(
                self._declined_row(req, src, participants, recorded, other, direction, reason, now)
            )
        except Exception:
            log.exception("call %s: cannot write declined row", req.call_id)
        # The reason stays in the index row and the counters, not on the wire.
        self._respond(
            tx, req, 403, "Forbidden", to_tag=local_tag, headers=[("Warning", NOT_RECORDED)]
        )

    # ------------------------------------------------------------------ media legs
    async def _open_legs(
        self, s: RecordingSession, plans: list[StreamPlan]
    ) -> list[AcceptedStream]:
        """Carry out the mapper's plan for a new offer's ``open`` m-lines; the rest refused."""
        answer: list[AcceptedStream] = []
        used_labels: set[str] = set()
        for plan in plans:
            st = plan.stream
            if plan.fate is StreamFate.OPEN:
                answer.append(await self._open_leg(s, st, used_labels))
            else:
                answer.append(refused(st))
        return answer

    async def _open_leg(
        self, s: RecordingSession, st: OfferedStream, used_labels: set[str]
    ) -> AcceptedStream:
        """A socket and a receiver for one m-line, as :func:`.streams.choose_leg` decides."""
        choice = choose_leg(st, used_labels, self.settings.srtp_suites)
        if choice is None or st.codec is None:
            return refused(st)
        try:
            receiver = self.receiver_factory(
                choice.label,
                srtp=choice.srtp,
                jitter_window=self.settings.jitter_window,
                rtpmaps=choice.decode_maps,
            )
        except RemoteProtocolError as exc:  # e.g. an a=crypto line we cannot use
            log.warning("call %s: refusing m-line %d: %s", s.call_id, st.index, exc.message)
            used_labels.discard(choice.label)
            return refused(st)
        endpoint = await self.ports.open(receiver, rtcp_mux=st.rtcp_mux)
        self._bind_media_source(endpoint, receiver, st)
        leg = Leg(
            index=st.index,
            label=choice.label,
            receiver=receiver,
            endpoint=endpoint,
            port=endpoint.port,
            rtpmaps=choice.rtpmaps,
            codec=st.codec.encoding,
            srtp=choice.srtp is not None,
            crypto_answer=choice.crypto_answer,
            direction=choice.direction,
            offered_label=st.label,
        )
        s.legs.append(leg)
        return accepted(leg, st)

    def _bind_media_source(self, endpoint: Any, receiver: Any, st: OfferedStream) -> None:
        """Media of this stream only from where the offer says it comes from (or latched)."""
        if hasattr(endpoint, "expect_source"):
            # The offer's host, any port: SRCs (and SIPp) need not send from their m= port.
            endpoint.expect_source(
                st.address if st.port not in (0, 9) else None,
                None,
                None,
                allowed=self.sources.allowed,
                latch=self.settings.rtp_latch,
                on_rejected=getattr(receiver, "reject_source", None),
            )

    def _assign_participants(self, s: RecordingSession) -> None:
        senders: dict[str, Any] = {}
        streams_by_label: dict[str, Any] = {}
        if s.metadata is not None:
            senders = s.metadata.label_senders()
            streams_by_label = {st.label: st for st in s.metadata.streams if st.label is not None}
        for i, leg in enumerate(sorted(s.legs, key=lambda x: x.index)):
            p = senders.get(leg.label)
            st = streams_by_label.get(leg.label)
            if st is not None:
                leg.stream_id = st.stream_id
            if p is not None:
                leg.participant_id = p.participant_id
            elif s.metadata is None and i < len(s.participants):
                leg.participant_id = s.participants[i]["participant_id"]
        for part in s.participants:
            part["send"] = [
                leg.label for leg in s.legs if leg.participant_id == part["participant_id"]
            ]

    def _close_leg(self, leg: Leg) -> None:
        if leg.endpoint is not None:
            try:
                self.ports.release(leg.endpoint)
            except Exception:
                log.exception("releasing port %s", leg.port)
            leg.endpoint = None

    def _manifest(self, s: RecordingSession) -> dict[str, Any]:
        manifest = s.manifest(
            channels=self.settings.channels,
            bitrate_kbps=self.settings.bitrate_kbps,
            mp3_quality=self.settings.mp3_quality,
            retention_years=self.settings.retention_years,
        )
        # The key is chosen when the call starts and kept in the manifest, so a recovery
        # after a key rotation still encrypts with the recording's own key.
        manifest["key_id"] = s.key_id
        return manifest

    # ------------------------------------------------------------------ mid-call changes
    async def _on_reinvite(self, req: SipRequest, tx: Any, src: Any) -> None:
        s = self.sessions.get(req.call_id or "")
        if s is None or req.to_tag != s.local_tag:
            self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            return
        if s.invite_pending:
            self._respond(tx, req, 491, "Request Pending", to_tag=s.local_tag)
            return
        s.invite_pending = True
        try:
            await self._apply_offer(req, tx, s, invite=True)
        finally:
            s.invite_pending = False

    async def _on_update(self, req: SipRequest, tx: Any, src: Any) -> None:
        s = self.sessions.get(req.call_id or "")
        if s is None or req.to_tag != s.local_tag:
            self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            return
        await self._apply_offer(req, tx, s, invite=False)

    async def _apply_offer(
        self, req: SipRequest, tx: Any, s: RecordingSession, *, invite: bool
    ) -> None:
        now = self.clock()
        try:
            offer, metadata = self._parse_body(req)
        except RemoteProtocolError as exc:
            code = exc.status_hint if exc.status_hint in (413, 415, 513) else 400
            self._respond(tx, req, code, _reason(exc.message), to_tag=s.local_tag)
            return
        plans = map_offer(parse_offer(offer), s.legs) if offer is not None else []
        if offer is not None and self._refuse_added_streams(req, tx, s, plans):
            return  # the session, its legs and its metadata stay as they were
        s.refreshed_at = now
        se = self._session_expires(req)
        if se:
            s.session_expires = se
        if metadata is not None:
            self._update_metadata(s, metadata, now)
        if offer is None:
            # A metadata-only update (or a session refresh): answer with the SDP we have.
            if invite:
                self._send_answer(req, tx, s)
            else:
                self._respond(tx, req, 200, "OK", to_tag=s.local_tag)
            await self._save_manifest(s)
            return
        answer: list[AcceptedStream] = []
        used = {leg.label for leg in s.legs}
        for plan in plans:
            answer.append(await self._carry_out(s, plan, used))
        self._sync_ports_held(s)
        self._assign_participants(s)
        s.sdp_version += 1
        s.last_answer = answer
        await self._save_manifest(s)
        if invite:
            self._pending_invites[tx] = s.call_id
            self._send_answer(req, tx, s)
        else:
            body = build_answer(
                origin_host=self.settings.advertised_address,
                session_id=s.sdp_session_id,
                session_version=s.sdp_version,
                connection_address=self.settings.advertised_address,
                streams=answer,
            )
            self._respond(
                tx, req, 200, "OK", to_tag=s.local_tag, body=body, content_type="application/sdp"
            )

    async def _carry_out(
        self, s: RecordingSession, plan: StreamPlan, used: set[str]
    ) -> AcceptedStream:
        """One m-line of a re-INVITE or UPDATE, as the mapper planned it."""
        st, leg = plan.stream, plan.leg
        match plan.fate:
            case StreamFate.OPEN:
                if leg is not None:
                    used.discard(leg.label)  # re-offered after a port 0: the label again
                try:
                    return await self._open_leg(s, st, used)
                except Exception as exc:
                    log.error("call %s: cannot open media for added stream: %s", s.call_id, exc)
                    return refused(st)
            case StreamFate.CLOSE:
                # The stream was removed: stop receiving, keep what we have.
                assert leg is not None
                leg.direction = "inactive"
                self._close_leg(leg)
                return refused(st)
            case StreamFate.KEEP:
                assert leg is not None
                # A re-INVITE may name a new sender: its address, and its SSRC (RFC 3550 8.2).
                self._bind_media_source(leg.endpoint, leg.receiver, st)
                if hasattr(leg.receiver, "allow_new_sender"):
                    leg.receiver.allow_new_sender()
                refresh_leg(leg, st)
                return accepted(leg, st)
        return refused(st)

    def _refuse_added_streams(
        self, req: SipRequest, tx: Any, s: RecordingSession, plans: list[StreamPlan]
    ) -> bool:
        """Check a new offer's added streams against the source's budgets; True when refused
        (then answered 503 or 488, naming the budget, with nothing of the session changed)."""
        # An upper bound: SRTP without a suite we take is refused later.
        added, removed = count(plans, StreamFate.OPEN), count(plans, StreamFate.CLOSE)
        if not added:
            return False
        held = sum(1 for leg in s.legs if leg.endpoint is not None)
        refusal = self.admission.check_change(
            s.source_host, held - removed + added, added - removed
        )
        if refusal is None:
            return False
        log.info(
            "call %s: %s from %s refused: budget %s (%d streams held, %d added)",
            escape(s.call_id, CALL_ID_LIMIT),
            req.method,
            s.source_host,
            refusal.budget,
            held,
            added,
        )
        self._respond(
            tx,
            req,
            refusal.status,
            refusal.reason_phrase,
            to_tag=s.local_tag,
            headers=refusal.headers,
        )
        return True

    def _sync_ports_held(self, s: RecordingSession) -> None:
        """Count the session's open legs against its source's port budget (after streams
        were added, or removed with ``port 0``: those ports return to the budget)."""
        held = 0 if s.ended else sum(1 for leg in s.legs if leg.endpoint is not None)
        if held > s.ports_held:
            self.admission.hold(s.source_host, held - s.ports_held)
        elif held < s.ports_held:
            self.admission.release(s.source_host, s.ports_held - held)
        s.ports_held = held

    def _update_metadata(self, s: RecordingSession, update: RecordingMetadata, now: float) -> None:
        """Apply a metadata update (re-INVITE/UPDATE) and record who joined and who left.

        Parties are matched by number before participant id: some SRCs (BroadWorks) give the
        same party a new id in every document. A *complete* update that no longer lists an
        earlier party means that party left (transfer, redirect, the end of a 3-way call);
        the party stays in the recording with ``left_at`` set.
        """
        merged = s.metadata.merge(update) if s.metadata is not None else update
        s.metadata = merged
        at = datetime.fromtimestamp(now, UTC).isoformat()

        def key(p: dict[str, Any]) -> str:
            return str(p.get("number") or p.get("participant_id"))

        def event(p: dict[str, Any], kind: str, when: str) -> None:
            s.participant_history.append(
                {
                    "participant_id": p.get("participant_id"),
                    "aor": p.get("aor"),
                    "number": p.get("number"),
                    "event": kind,
                    "at": when,
                }
            )

        before = {key(p): p for p in s.participants}
        listed = {key(p) for p in self._participants_from(update)}
        fresh = self._participants_from(merged)
        seen: set[str] = set()
        for p in fresh:
            k = key(p)
            seen.add(k)
            old = before.get(k)
            if old is None:
                event(p, "joined", at)
                continue
            if old.get("left_at") and k in listed and not p.get("left_at"):
                event(p, "joined", at)  # back again
            elif old.get("left_at") and not p.get("left_at"):
                p["left_at"] = old["left_at"]
            if p.get("left_at") and not old.get("left_at"):
                event(p, "left", p["left_at"])
            if not p.get("joined_at"):
                p["joined_at"] = old.get("joined_at")
        if update.datamode == "complete":
            for p in fresh:
                if key(p) not in listed and not p.get("left_at"):
                    p["left_at"] = at
                    event(p, "left", at)
        for k, old in before.items():
            if k not in seen:
                p = dict(old)
                if not p.get("left_at"):
                    p["left_at"] = at
                    event(p, "left", at)
                fresh.append(p)
        s.participants = fresh
        self._assign_participants(s)
        if s.other_number is None:
            _r, s.other_number, _d = self._roles(s.participants, None)

    def _participants_from(self, md: RecordingMetadata) -> list[dict[str, Any]]:
        cc = self.settings.country_code
        return [
            {
                "participant_id": p.participant_id,
                "aor": p.aor,
                "name": p.name,
                "number": normalize_number(p.aor, country_code=cc) if p.aor else None,
                "send": [],
                "joined_at": p.associate_time.isoformat() if p.associate_time else None,
                "left_at": p.disassociate_time.isoformat() if p.disassociate_time else None,
            }
            for p in md.participants
        ]

    async def _save_manifest(self, s: RecordingSession) -> None:
        if s.setup is not None and not s.setup.done():
            await asyncio.gather(s.setup, return_exceptions=True)
        if s.spool is None:
            return
        manifest = self._manifest(s)
        await asyncio.to_thread(s.spool.update_manifest, manifest)
        try:
            await self.index.update_participants(s.rec_id, s.participants)
        except Exception:
            log.exception("call %s: cannot update participants", s.call_id)

    # ------------------------------------------------------------------ CANCEL and end
    async def _end(self, call_id: str, *, reason: str | None, send_bye: bool) -> None:
        s = self.sessions.pop(call_id, None)
        if s is None or s.ended:
            return
        s.ended = True
        ended_at = self.clock()
        # The recording covers the session to its end (silence where media paused), except
        # when we ended it ourselves for lack of media or signalling: then it ends with the
        # last packet, not with our detection of the silence.
        s.extend_to_end = reason not in ("rtp timeout", "session expired", "no ACK")
        host = s.source_host
        self.admission.release(host, s.ports_held)
        s.ports_held = 0
        self._per_source[host] = max(0, self._per_source.get(host, 1) - 1)
        if self._per_source.get(host) == 0:
            self._per_source.pop(host, None)
        if send_bye:
            self._send_bye(s)
        elif reason is None and not self._closing:
            # The SRC's BYE can overtake its last RTP packets: keep listening a moment.
            await asyncio.sleep(self.BYE_GRACE)
        for leg in s.legs:
            if leg.endpoint is not None:
                leg.endpoint.read_now()  # what the kernel still holds for it, before closing
            self._close_leg(leg)
        if s.setup is not None:
            try:
                await s.setup
            except Exception:
                # Logged and indexed as ``failed`` by _persist_start.
                self.counters.failed += 1
                return
        final_stats: dict[str, dict[str, Any]] = {}
        for leg in s.legs:
            data = leg.receiver.finish()
            if data:
                s.spool.append(leg.label, data)
            final_stats[leg.label] = leg.receiver.stats.as_dict()
        task = asyncio.create_task(self._finish(s, ended_at, final_stats, reason))
        self._finalizing.add(task)
        task.add_done_callback(self._finalizing.discard)

    async def _finish(
        self,
        s: RecordingSession,
        ended_at: float,
        stats: dict[str, dict[str, Any]],
        reason: str | None,
    ) -> None:
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self._flush_one, s)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self.executor,
                functools.partial(
                    finalize_spool,
                    str(self.spool.root),
                    s.rec_id,
                    str(self.recordings_root),
                    "complete",
                    ended_at,
                    stats,
                    reason,
                    self.keyring,
                    # Only this call's finalisation needs it: recovery after a crash has
                    # no end time to extend to.
                    extend_to_end=s.extend_to_end,
                    leg_audio_dir=self.leg_audio_dir,
                    spool_node=getattr(self.spool, "node_id", ""),
                ),
            )
            await self._index_finished(s, rows.finished_recording(self._manifest(s), result))
            await self._tell_indexed(s.rec_id)
            await asyncio.to_thread(s.spool.remove)
            self.counters.finished += 1
            log.info(
                "call %s: recording %s finished (%s, %.1f s)",
                s.call_id,
                s.rec_id,
                result.get("file"),
                result.get("duration_s", 0.0),
            )
        except Exception:
            self.counters.failed += 1
            log.exception(
                "call %s: finalising recording %s failed; spool kept for recovery",
                s.call_id,
                s.rec_id,
            )
        finally:
            self.counters.finalize_seconds += time.perf_counter() - t0

    async def _tell_indexed(self, rec_id: str) -> None:
        """Hand a stored recording on (transcription); its failure never fails the call."""
        if self.on_indexed is None:
            return
        try:
            await self.on_indexed(rec_id)
        except Exception:
            log.exception("recording %s: could not be queued for transcription", rec_id)

    async def _index_finished(self, s: RecordingSession, finished: Any) -> None:
        """Write the finished row, retrying while the index cannot take it.

        The MP3 is already in place, so a database that is locked (a long report beside the
        server) or briefly unreachable (PostgreSQL failing over) must not leave the row in
        ``recording`` until the next restart: the write is retried for about five minutes
        (:data:`INDEX_RETRY_DELAYS`) before the spool is left for recovery. A refusal of the
        row itself (finished twice) is not retried.
        """
        delays = (*self.INDEX_RETRY_DELAYS, None)
        for attempt, delay in enumerate(delays, start=1):
            try:
                if s.index_pending:
                    await self.index.create_recording(self._new_recording_row(s))
                    s.index_pending = False
                try:
                    await self.index.finish_recording(s.rec_id, finished)
                except RecordingNotFound:  # the row went missing during the call: write it
                    await self.index.create_recording(self._new_recording_row(s))
                    await self.index.finish_recording(s.rec_id, finished)
                return
            except LocalProtocolError:
                raise
            except Exception as exc:
                if delay is None or self._closing:
                    raise
                log.warning(
                    "call %s: index write of recording %s failed (attempt %d: %s); "
                    "retrying in %.1f s",
                    s.call_id,
                    s.rec_id,
                    attempt,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._closing:
                    raise

    def _send_bye(self, s: RecordingSession) -> None:
        try:
            request, destination = bye_for(s, self._contact_hostport(s.source))
            self.sip.send_request(request, destination)
        except Exception:
            log.exception("call %s: cannot send BYE", s.call_id)

    # ------------------------------------------------------------------ flushing
    def _flush_one(self, s: RecordingSession) -> None:
        if s.spool is not None:
            # One session: an fdatasync of each of its legs, not a syncfs of the whole file
            # system (which would write back every live call's spool at each hang-up).
            s.spool.flush()

    async def _flush_loop(self) -> None:
        # Flushes run at fixed times (not "interval after the last one ended"), so the audio
        # a crash can lose stays within one interval however long an fsync takes.
        loop = asyncio.get_running_loop()
        interval = self.settings.flush_interval
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += interval
            if next_at < loop.time():  # fell behind (a very slow disk): skip, don't burst
                next_at = loop.time() + interval
            try:
                await self.flush_all()
                await self._expire(self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flusher")

    async def flush_all(self) -> None:
        """Move released packets of every leg to the spools and fsync them (in a thread)."""
        live = [s for s in self.sessions.values() if s.spool is not None]
        # Packets wait in the kernel for the media pump's tick: read them now, so that what
        # a crash can lose stays within one flush interval.
        self.ports.read_all()
        for s in live:
            try:
                for leg in s.legs:
                    data = leg.receiver.take_spool_bytes()
                    if data:
                        s.spool.append(leg.label, data)
            except Exception:
                # One call's trouble never stops the flush of the others.
                log.exception("call %s: cannot spool its audio", escape(s.call_id, 256))
        if live:
            await asyncio.to_thread(
                self.spool.flush_sessions, [s.spool for s in live], self._flush_failed
            )

    def _flush_failed(self, spool: Any, exc: Exception) -> None:
        # Called from the flush thread: only log (the buffers are kept for the next pass).
        log.error("spool %s: flush failed (kept for the next pass): %s", spool.rec_id, exc)

    async def _expire(self, now: float) -> None:
        timeout = self.settings.inactivity_timeout
        for s in list(self.sessions.values()):
            if not s.acked and now - s.started_at < ACK_WAIT_T1 * self.settings.t1:
                # The INVITE transaction still waits for the ACK (Timer H, RFC 3261 17.2.1).
                continue
            if s.session_expires and now - s.refreshed_at > s.session_expires:
                log.info("call %s: session expired (RFC 4028)", s.call_id)
                await self._end_locked(s.call_id, "session expired")
            elif not s.all_on_hold() and now - s.last_media_at() > timeout:
                log.info("call %s: no RTP for %.0f s, ending", s.call_id, timeout)
                await self._end_locked(s.call_id, "rtp timeout")

    async def _end_locked(self, call_id: str, reason: str) -> None:
        lock = self._locks.setdefault(call_id, asyncio.Lock())
        async with lock:
            await self._end(call_id, reason=reason, send_bye=True)

    # ------------------------------------------------------------------ crash recovery
    async def recover(
        self,
        store: Any = None,
        *,
        reason: str = "recorder stopped during the call",
    ) -> bool:
        """Finalise the spools a crash left in ``store`` (default: this node's own), marked
        ``interrupted``, then close the ``recording`` rows of that store's node that had no
        spool. True when nothing was left in place."""
        store = self.spool if store is None else store
        node = getattr(store, "node_id", "")
        seen: set[str] = set()
        clean = True
        loop = asyncio.get_running_loop()
        for sp in store.orphans():
            rec_id = sp.rec_id
            seen.add(rec_id)
            try:
                result = await loop.run_in_executor(
                    self.executor,
                    functools.partial(
                        finalize_spool,
                        str(store.root),
                        rec_id,
                        str(self.recordings_root),
                        "interrupted",
                        None,
                        None,
                        reason,
                        self.keyring,
                        leg_audio_dir=self.leg_audio_dir,
                        spool_node=node,
                    ),
                )
                manifest = sp.manifest
                if await self.index.get(rec_id) is None:
                    await self.index.create_recording(
                        rows.new_recording(manifest, node_id=node or None)
                    )
                await self.index.finish_recording(rec_id, rows.finished_recording(manifest, result))
                await asyncio.to_thread(sp.remove)
                await self._tell_indexed(rec_id)
                log.warning("recovered interrupted recording %s (%s)", rec_id, result.get("file"))
            except Exception:
                clean = False
                log.exception("cannot recover spool %s; left in place", rec_id)
        live = self._live_rec_ids()
        for row in await self.index.open_recordings(node_id=node or None):
            if row["id"] not in seen and row["id"] not in live:
                try:
                    await self.index.mark_interrupted(
                        row["id"], reason="recorder stopped before media was spooled"
                    )
                except Exception:
                    clean = False
                    log.exception("cannot close open recording %s", row["id"])
        return clean

    def _live_rec_ids(self) -> set[str]:
        return {s.rec_id for s in self.sessions.values()}

    # ------------------------------------------------------------------ index rows
    def _new_recording_row(self, s: RecordingSession) -> NewRecording:
        return rows.new_recording(self._manifest(s), node_id=self._node_id(self.spool))

    def _declined_row(
        self,
        req: SipRequest,
        src: Any,
        participants: list[dict[str, Any]],
        recorded: str | None,
        other: str | None,
        direction: str,
        reason: str,
        now: float,
    ) -> DeclinedCall:
        origin = self._origin(req, src)
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

    @staticmethod
    def _node_id(store: Any) -> str | None:
        return getattr(store, "node_id", "") or None
