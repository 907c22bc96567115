"""The SRS driver: the asyncio side of :mod:`.core` (sockets, tasks, locks, the disk).

Theory of operation: the SIP layer hands us typed events (``RequestReceived``,
``AckReceived``, ``InviteCancelled``, ``TransactionTimedOut``). Each dialog's events are
handled in order, one at a time (a lock per Call-ID); different dialogs run concurrently.
For each, the driver gathers the facts the core cannot read itself (free space, free
ports, the current encryption key), calls :meth:`.core.SrsCore.handle` with the time, and
carries out the actions it returns, in order: responses and BYEs through ``sip``, the
policy's decision, RTP sockets (:class:`ApplyMedia`), the spool and the index rows. An
action whose outcome the core needs (the policy's answer, the media opened) feeds an event
back. What each SIP request means -- admission, the m-line mapping, metadata, the end of a
session -- is decided in the core; see its docstring.

About once a second a flusher moves each leg's released packets into its spool file and
fsyncs it (in a thread, off the loop), and ends the sessions :meth:`.core.SrsCore.due`
names (RTP inactivity, session expiry; sending a BYE to the SRC). At the end of a session
its sockets close, the spool is flushed one last time, and a worker process renders the MP3
(:mod:`.finalize`); the index row is then completed, with retries while the index cannot
take it. Nothing here waits on media work.

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
import shutil
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..sip.events import (
    AckReceived,
    InviteCancelled,
    RequestReceived,
    TransactionTimedOut,
)
from ..sip.message import SipRequest, make_response, parse_message
from ..storage import rows
from ..storage.index import NewRecording, RecordingNotFound
from ..wiretext import escape
from .admission import Admission, SourcePolicy, TrustedProxies
from .answer import AcceptedStream
from .core import (
    NOT_RECORDED,
    AckIn,
    AckTimedOut,
    Action,
    ApplyMedia,
    AskPolicy,
    CancelIn,
    CloseLegs,
    Counters,
    EndRequested,
    EndSession,
    Event,
    Facts,
    MediaApplied,
    MediaFailed,
    NoteRefusal,
    PolicyAnswered,
    RequestIn,
    Respond,
    SaveManifest,
    SendRequest,
    SrsCore,
    SrsSettings,
    StartRecording,
    WriteDeclined,
)
from .finalize import finalize_spool
from .participants import Party
from .session import Leg, OfferedStream, RecordingSession
from .streams import StreamFate, StreamPlan, accepted, choose_leg, refresh_leg, refused

__all__ = ["NOT_RECORDED", "SrsSettings", "SessionRecordingServer"]

log = logging.getLogger("siprec_recorder.srs")

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


class SessionRecordingServer:
    """The SRS. Feed it SIP events with :meth:`on_event`; it answers through ``sip``."""

    BYE_GRACE = 0.2  # seconds the legs keep receiving after the SRC's BYE
    # Waits between attempts to index a finished recording (about five minutes in all).
    INDEX_RETRY_DELAYS: tuple[float, ...] = (0.5, 1, 2, 4, 8, 15, 30, 60, 60, 60, 60)
    # Set by app.py when transcription is on: where the finaliser leaves each leg's audio,
    # and what hears of every recording once it is indexed (the transcription queue).
    leg_audio_dir: str | None = None
    on_indexed: Callable[[str], Any] | None = None
    REFUSAL_ROWS_BURST = SrsCore.REFUSAL_ROWS_BURST
    REFUSAL_ROWS_PER_SECOND = SrsCore.REFUSAL_ROWS_PER_SECOND

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
        self.core = SrsCore(settings, has_policy=policy is not None)
        self.receiver_factory = receiver_factory
        self.keyring = keyring  # compliance.crypto.KeyRing: encrypt finished files at rest
        self.clock = clock
        self.free_space = FreeSpace(self.recordings_root)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finalizing: set[asyncio.Task[Any]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()  # set by stop(): cuts short the waits of retries

    # The core's state, as the metrics endpoint and app.py read it.
    @property
    def settings(self) -> SrsSettings:
        return self.core.settings

    @settings.setter
    def settings(self, value: SrsSettings) -> None:
        self.core.settings = value

    @property
    def sessions(self) -> dict[str, RecordingSession]:
        return self.core.sessions

    @property
    def counters(self) -> Counters:
        return self.core.counters

    @property
    def admission(self) -> Admission:
        return self.core.admission

    @property
    def sources(self) -> SourcePolicy:
        return self.core.sources

    @property
    def proxies(self) -> TrustedProxies:
        return self.core.proxies

    @property
    def _cancelled(self) -> dict[Hashable, SipRequest]:
        return self.core.cancelled

    @property
    def _closing(self) -> bool:
        return self.core.closing

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Recover what a crash left, then start the flusher."""
        await self.recover()
        self._flusher = asyncio.create_task(self._flush_loop(), name="srs-flusher")

    async def stop(self) -> None:
        """End every session as if it had received a BYE, and wait for the files."""
        self.core.closing = True
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        for call_id in list(self.sessions):
            await self._run(
                self.core.handle(EndRequested(call_id, "recorder shutdown"), self.clock())
            )
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
            # Not queued behind the INVITE it cancels: the INVITE's flow looks for this
            # mark before it answers, and answers 487 instead (RFC 3261 section 9.2).
            self.core.handle(CancelIn(event.transaction, event.cancel), self.clock())
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
        return self.core.pending_invites.get(tx, "?")

    async def _dispatch(self, key: str, event: Any) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                core_event = await self._core_event(event)
                if core_event is not None:
                    await self._run(self.core.handle(core_event, self.clock()))
        except Exception:  # a bug must never take the receive loop down
            log.exception("error handling %s", type(event).__name__)
            if isinstance(event, RequestReceived) and event.request.method != "ACK":
                try:
                    self.sip.respond(
                        event.transaction,
                        self.core.respond(
                            event.transaction, event.request, 500, "Server Internal Error"
                        ).response,
                    )
                except Exception:
                    log.debug("could not answer 500", exc_info=True)
        finally:
            if not lock.locked() and key not in self.sessions:
                self._locks.pop(key, None)

    async def _core_event(self, event: Any) -> Event | None:
        """The core's event for a SIP one, with the facts a new INVITE or OPTIONS needs."""
        match event:
            case RequestReceived(request=req, transaction=tx, source=src):
                facts = Facts()
                if req.method.upper() in ("INVITE", "OPTIONS") and not req.to_tag:
                    facts = await self._facts()
                return RequestIn(req, tx, src, facts)
            case AckReceived(request=req):
                return AckIn(req)
            case TransactionTimedOut(transaction=tx):
                return AckTimedOut(tx)
        return None

    async def _facts(self) -> Facts:
        """What the core cannot read itself: free space (in a thread), ports, the key."""
        free_mb = await self.free_space.free_mb() if self.settings.min_free_mb else None
        available = getattr(self.ports, "available", None)
        key = self.keyring.current if self.keyring is not None else None
        return Facts(
            free_mb=free_mb,
            ports_available=available if isinstance(available, int) else None,
            key_id=key.key_id if key is not None else None,
        )

    async def cannot_take_calls(self) -> str | None:
        """Why this node would refuse a new call now (None: it can take one)."""
        return self.core.cannot_take_calls(await self._facts())

    # ------------------------------------------------------------------ actions
    async def _run(self, actions: Sequence[Action]) -> None:
        """Carry out the core's actions in order; outcomes go back to the core."""
        queue: deque[Action] = deque(actions)
        while queue:
            action = queue.popleft()
            outcome = await self._carry_out_action(action)
            if outcome is not None:
                queue.extendleft(reversed(self.core.handle(outcome, self.clock())))

    async def _carry_out_action(self, action: Action) -> Event | None:
        match action:
            case Respond(transaction=tx, response=response):
                self.sip.respond(tx, response)
            case SendRequest(request=request, destination=destination):
                try:
                    self.sip.send_request(request, destination)
                except Exception:
                    log.exception("call %s: cannot send BYE", request.call_id)
            case AskPolicy(transaction=tx, aors=aors, at=at):
                assert self.policy is not None
                return PolicyAnswered(tx, await self.policy.decide(list(aors), at))
            case ApplyMedia(transaction=tx, session=s, plans=plans, initial=True):
                try:
                    answer = await self._open_legs(s, list(plans))
                except Exception as exc:  # ports exhausted, bind failures, bad crypto
                    return MediaFailed(tx, str(exc))
                return MediaApplied(tx, tuple(answer))
            case ApplyMedia(transaction=tx, session=s, plans=plans, initial=False):
                used = {leg.label for leg in s.legs}
                answer = [await self._carry_out(s, plan, used) for plan in plans]
                return MediaApplied(tx, tuple(answer))
            case CloseLegs(session=s, legs=legs):
                for leg in legs or s.legs:
                    self._close_leg(leg)
            case WriteDeclined(row=row):
                try:
                    await self.index.record_declined(row)
                except Exception:
                    log.exception("call %s: cannot write declined row", row.call_id)
            case NoteRefusal():
                self._note_refusal(action)
            case StartRecording(session=s):
                s.setup = asyncio.create_task(self._persist_start(s))
            case SaveManifest(session=s):
                await self._save_manifest(s)
            case EndSession(session=s, ended_at=ended_at, reason=reason, grace=grace):
                await self._end(s, ended_at, reason, grace)
        return None

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

    def _note_refusal(self, note: NoteRefusal) -> None:
        """Leave a ``declined`` row for a call refused before a session existed, so that the
        completeness report lists it (in the background: the 503 is already on its way), as
        far as the core allows (see the module docstring)."""
        first = self.core.refusal_needs_policy(note)
        if first is None:
            return
        ask, participants = first

        async def write() -> None:
            decision = note.decision
            try:
                if ask:
                    decision = await self._evaluate(participants, note.at)
                row = self.core.refusal_row(note, participants, decision)
                if row is not None:
                    await self.index.record_declined(row)
            except Exception:
                log.exception(
                    "call %s: cannot write the refusal row (%s)",
                    escape(note.request.call_id or "", 256),
                    note.reason,
                )

        task = asyncio.create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evaluate(self, participants: list[Party], now: float) -> Any:
        """What the policy would decide of a refused call (not counted as a decision)."""
        aors = [p["aor"] for p in participants if p["aor"]]
        policy = self.policy
        assert policy is not None
        ask = getattr(policy, "evaluate", None) or policy.decide
        return await ask(aors, datetime.fromtimestamp(now, UTC))

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

    # ------------------------------------------------------------------ the end
    async def _end(
        self, s: RecordingSession, ended_at: float, reason: str | None, grace: bool
    ) -> None:
        """Close the legs of a session the core ended, and start its finalisation."""
        if grace:
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
        for call_id, reason in self.core.due(now):
            lock = self._locks.setdefault(call_id, asyncio.Lock())
            async with lock:
                await self._run(self.core.handle(EndRequested(call_id, reason), self.clock()))

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

    @staticmethod
    def _node_id(store: Any) -> str | None:
        return getattr(store, "node_id", "") or None
