"""The composition root: a :class:`~siprec_recorder.config.Config` in, a running recorder out.

Only this module reads configuration and builds objects; every component below gets what it
needs handed to it. :class:`Recorder` starts, in order: the index (migrations), crash
recovery of orphan spools, the policy engine, the RTP port pool, the finaliser processes, the
SIP listeners, the metrics endpoint and the portal. :meth:`Recorder.stop` ends live sessions
as if they had received a BYE and waits for their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import ssl
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .config import Config, mask_secret
from .errors import OperatorError
from .logging_setup import setup_logging
from .metrics import MetricsServer
from .preflight import (
    exposure_warnings,
    first_unbindable,
    listen_error,
    prepare_recordings_dir,
)
from .sip.transport import parse_listen

__all__ = ["Recorder", "open_store", "run"]

from .portrange import ephemeral_overlap

log = logging.getLogger("siprec_recorder")


def _executor(workers: int) -> Executor:
    from .siprec.finalize import watch_recorder

    if os.name == "posix":
        ctx: multiprocessing.context.BaseContext = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has the finaliser's imports loaded already.
        multiprocessing.get_context("forkserver").set_forkserver_preload(
            [
                "siprec_recorder.siprec.finalize",
                "siprec_recorder.rtp.render",
                "siprec_recorder.storage.mp3",
            ]
        )
    else:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=watch_recorder,
        initargs=(os.getpid(),),
    )


async def _warm_up(executor: Executor, workers: int) -> None:
    """Start every finaliser worker now, not at the first BYE: the first call's MP3 is not
    late by a process start and the imports of numpy, PyAV and LAME."""
    from .siprec.finalize import warm_up

    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(executor, warm_up) for _ in range(workers)))


def open_store(config: Config) -> Any:
    """The finished recordings' store: the folder, or the object store of ``recordings_url``."""
    from .storage.objects import FolderStore, S3Settings, S3Store, parse_store_url

    st = config.storage
    if not st.recordings_url:
        return FolderStore(config.recordings_path)
    bucket, prefix = parse_store_url(st.recordings_url)
    return S3Store(
        S3Settings(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=st.s3_endpoint or None,
            region=st.s3_region,
            access_key_id=os.environ.get(st.s3_access_key_env) or None,
            secret_access_key=os.environ.get(st.s3_secret_key_env) or None,
            object_lock=st.object_lock,
        )
    )


class Recorder:
    """Everything the ``serve`` command runs, built from one Config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: Any = None
        self.index: Any = None
        self.policy: Any = None
        self.srs: Any = None
        self.sip: Any = None
        self.ports: Any = None
        self.executor: Executor | None = None
        self.metrics: MetricsServer | None = None
        self._web_server: Any = None
        self.portal: Any = None  # supervise.Supervised
        self.metrics_part: Any = None  # supervise.Supervised
        self._notifier: Any = None
        self.policy_settings: Any = None
        self.keyring: Any = None
        self.assurance: Any = None
        self.uploader: Any = None
        self.web_address: tuple[str, int] | None = None
        self.transcription: Any = None
        self._sip_tls: ssl.SSLContext | None = None
        self.lease: Any = None
        self.node: Any = None
        self.purge_schedule: Any = None

    async def start(self) -> None:
        from .policy.engine import PolicyEngine
        from .rtp.endpoint import PortPool
        from .rtp.leg import LegReceiver
        from .sip.core import SipCore, TimerConfig
        from .sip.transport import SipService
        from .siprec.admission import Budgets
        from .siprec.server import SessionRecordingServer, SrsSettings
        from .storage.db import Database
        from .storage.index import SqlIndex
        from .storage.spool import SpoolStore

        c = self.config
        # A second recorder started by mistake on the same ports must stop here, before it
        # opens the index or recovers spools that belong to the running one.
        taken = first_unbindable(list(c.sip.listen))
        if taken is not None:
            raise listen_error("[sip] listen", *taken)
        root = prepare_recordings_dir(c.storage)
        self.keyring = self._keyring()
        # Every refusal an operator can fix comes before the index is opened or upgraded.
        self._sip_tls = self._tls_context()
        self.db = Database(c.database_url)
        if c.transcription.enabled:
            self._build_transcription()
            await self.transcription.check_model()
        await self._open_index()
        self.index = SqlIndex(self.db, batch_window=c.storage.index_batch_window)
        await self._acquire_lease()
        policy_settings = c.policy_settings()
        self.policy_settings = policy_settings
        self.policy = PolicyEngine(self.db, policy_settings)
        self.ports = PortPool(c.rtp.address, c.rtp.port_min, c.rtp.port_max)
        if (overlap := ephemeral_overlap(c.rtp.port_min, c.rtp.port_max)) is not None:
            log.warning(
                "[rtp] port_min..port_max (%d-%d) overlaps the kernel's ephemeral ports "
                "(%d-%d, net.ipv4.ip_local_port_range): outgoing connections can take RTP "
                "ports; move the range below %d",
                c.rtp.port_min,
                c.rtp.port_max,
                *overlap,
                overlap[0],
            )
        self.executor = _executor(c.recording.workers)
        await _warm_up(self.executor, c.recording.workers)
        listeners = [parse_listen(s) for s in c.sip.listen]
        contact_host = c.sip.public_host or listeners[0][1]
        if contact_host in ("0.0.0.0", "::"):
            contact_host = c.rtp.advertised_address or c.rtp.address
        core = SipCore(
            TimerConfig(t1=c.sip.t1, t2=c.sip.t2, t4=c.sip.t4),
            max_message_size=c.sip.max_message_size,
        )
        settings = SrsSettings(
            advertised_address=c.rtp.advertised_address or c.rtp.address,
            contact_host=contact_host,
            contact_port=listeners[0][2],
            channels=c.recording.channels,
            bitrate_kbps=c.recording.bitrate_kbps,
            mp3_quality=c.recording.mp3_quality,
            retention_years=c.storage.retention_years,
            inactivity_timeout=c.rtp.inactivity_timeout,
            flush_interval=c.storage.flush_interval,
            jitter_window=c.rtp.jitter_window,
            rtp_latch=c.rtp.latch_source,
            max_sessions=c.sip.max_sessions,
            max_sessions_per_source=c.sip.max_sessions_per_source,
            allowed_sources=tuple(c.sip.allowed_sources),
            trusted_proxies=tuple(c.sip.trusted_proxies),
            unauthorised_response=c.sip.unauthorised_response,
            rate_limit_per_source=c.sip.rate_limit_per_source,
            rate_limit_burst=c.sip.rate_limit_burst,
            min_free_mb=c.storage.min_free_mb,
            country_code=c.policy.country_code,
            session_expires=c.sip.session_expires,
            t1=c.sip.t1,
            accept_plain_invite=c.sip.accept_plain_invite,
            budgets=Budgets(
                max_media_lines=c.admission.max_media_lines,
                max_ports_per_source=c.admission.max_ports_per_source,
            ),
            srtp_suites=tuple(c.rtp.srtp_suites),
        )
        srs_holder: list[Any] = []

        def on_event(event: Any) -> None:
            srs_holder[0].on_event(event)

        def source_filter(address: Any) -> bool:
            return bool(srs_holder[0].source_allowed(address))

        def on_rejected_source(address: Any, data: bytes) -> None:
            srs_holder[0].on_rejected_source(address, data)

        self.sip = SipService(
            core,
            on_event,
            source_filter=source_filter,
            on_rejected_source=on_rejected_source,
            max_connections_per_source=c.sip.max_connections_per_source,
            first_message_timeout=c.sip.first_message_timeout,
        )
        self.srs = SessionRecordingServer(
            sip=self.sip,
            index=self.index,
            policy=self.policy,
            spool=SpoolStore(root, self.lease.node_id),
            recordings_root=root,
            ports=self.ports,
            executor=self.executor,
            settings=settings,
            receiver_factory=LegReceiver,
            keyring=self.keyring,
        )
        srs_holder.append(self.srs)
        if self.transcription is not None:
            await self._start_transcription()
        await self.srs.start()
        if c.storage.recordings_url:
            from .storage.uploader import Uploader

            self.uploader = Uploader(
                self.db, root, open_store(c), retention_years=c.storage.retention_years
            )
            await self.uploader.start()
        await self._start_node()
        await self._start_sip()
        if self.sip.bound:
            ports: dict[str, int] = {}
            for transport, _host, port in self.sip.bound:
                ports.setdefault(transport, port)  # the first listener of each transport
            self.srs.settings = _replace(
                settings,
                contact_port=settings.contact_port or self.sip.bound[0][2],
                contact_ports=tuple(ports.items()),
            )
        self.metrics = MetricsServer(self)
        if c.web.enabled:
            await self._start_web()
        await self._start_assurance()
        if policy_settings.notify_webhook:
            from .policy.notify import NotificationWorker

            self._notifier = NotificationWorker(self.db, policy_settings.notify_webhook)
            await self._notifier.start()
        log.info(
            "siprec-recorder listening on %s; recordings in %s",
            ", ".join(f"{t}:{h}:{p}" for t, h, p in self.sip.bound),
            root.resolve(),
        )

    async def _start_assurance(self) -> None:
        from .assurance.service import AssuranceService

        self.assurance = AssuranceService(
            self.db, self.policy, self.config, self.config.recordings_path
        )
        await self.assurance.start()

    def _build_transcription(self) -> None:
        from .transcription.engine import PACKAGED_MODEL_SHA256, shipped_model_path
        from .transcription.service import TranscriptionService, TranscriptionSettings

        t = self.config.transcription
        root = self.config.recordings_path
        self.transcription = TranscriptionService(
            self.db,
            root,
            TranscriptionSettings(
                model_path=t.model_path or str(shipped_model_path()),
                model_sha256=t.model_sha256 or ("" if t.model_path else PACKAGED_MODEL_SHA256),
                languages=tuple(t.languages),
                max_workers=t.max_workers,
                threads_per_worker=t.threads_per_worker,
                nice=t.nice,
                beam_size=t.beam_size,
                max_attempts=t.max_attempts,
                exclude_numbers=tuple(t.exclude_numbers),
                exclude_templates=tuple(t.exclude_templates),
            ),
            self.keyring,
        )

    async def _start_transcription(self) -> None:
        from .transcription.service import AUDIO_DIR

        assert self.transcription is not None
        root = self.config.recordings_path
        await self.transcription.start()
        self.srs.leg_audio_dir = str(root / AUDIO_DIR)
        self.srs.on_indexed = self.transcription.enqueue

    async def _open_index(self) -> None:
        from sqlalchemy.exc import DBAPIError

        try:
            await self.db.open(auto_migrate=self.config.auto_migrate)
        except (OSError, DBAPIError) as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise OperatorError(
                "[storage] database_url: cannot open the index "
                f"{mask_secret(self.config.database_url)}: {detail[0] if detail else exc!r}"
            ) from None

    async def _start_sip(self) -> None:
        specs = list(self.config.sip.listen)
        try:
            await self.sip.start(specs, tls=self._sip_tls)
        except OSError as exc:
            culprit = first_unbindable(specs)
            spec, error = culprit if culprit is not None else (", ".join(specs), exc)
            raise listen_error("[sip] listen", spec, error) from None

    async def _acquire_lease(self) -> None:
        from .cluster.lease import NodeLease, default_node_id

        c = self.config.cluster
        self.lease = NodeLease(
            self.db, c.node_id or default_node_id(), lease_seconds=c.lease_seconds
        )
        await self.lease.acquire()

    async def _start_node(self) -> None:
        from .cluster.node import NodeService, recover_legacy
        from .storage.spool import SpoolStore

        root = self.config.recordings_path
        c = self.config.cluster

        async def take_over(node_id: str) -> bool:
            return bool(
                await self.srs.recover(
                    SpoolStore(root, node_id),
                    reason=f"recorder node {node_id} stopped during the call",
                )
            )

        self.node = NodeService(
            self.lease,
            lambda node_id: SpoolStore(root, node_id),
            take_over,
            heartbeat_interval=c.heartbeat_interval,
            check_interval=c.takeover_check_interval,
        )
        await self.node.start()
        await recover_legacy(self.lease, SpoolStore(root), self.srs.recover)
        if self.config.storage.purge_hour >= 0:
            from zoneinfo import ZoneInfo

            from .cluster.jobs import PurgeSchedule
            from .storage.files import FileLayout

            self.purge_schedule = PurgeSchedule(
                self.db,
                FileLayout(root),
                node_id=self.lease.node_id,
                hour=self.config.storage.purge_hour,
                zone=ZoneInfo(self.config.policy.timezone),
                default_years=self.config.storage.retention_years,
            )
            self.purge_schedule.start()

    def _keyring(self) -> Any:
        st = self.config.storage
        if not (st.encryption_key_file or st.encryption_key_env):
            return None
        from .compliance.crypto import KeyLoadError, load_keyring

        try:
            return load_keyring(
                key_file=st.encryption_key_file or None,
                key_env=st.encryption_key_env or None,
                old_key_files=st.encryption_old_key_files,
            )
        except KeyLoadError as exc:
            key = "encryption_key_file" if st.encryption_key_file else "encryption_key_env"
            raise OperatorError(f"[storage] {key}: {exc}") from None

    def _tls_context(self) -> ssl.SSLContext | None:
        c = self.config.sip
        if not any(s.startswith("tls:") for s in c.listen):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(c.tls_certificate, c.tls_private_key)
        except (OSError, ssl.SSLError) as exc:
            raise OperatorError(
                f"[sip] tls_certificate: cannot load {c.tls_certificate} with key "
                f"{c.tls_private_key}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        if c.tls_client_ca:
            try:
                ctx.load_verify_locations(c.tls_client_ca)
            except (OSError, ssl.SSLError) as exc:
                raise OperatorError(
                    f"[sip] tls_client_ca: cannot load {c.tls_client_ca}: "
                    f"{getattr(exc, 'strerror', None) or exc}"
                ) from None
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    async def _start_web(self) -> None:
        try:
            import uvicorn

            from .policy.service import PolicyService
            from .services.settings import settings_from_config
            from .storage.files import FileLayout
            from .web.app import create_app
        except ImportError as exc:  # the portal is optional for the recording path
            log.warning("portal not started: %s", exc)
            return
        c = self.config.web
        host, _, port = c.listen.rpartition(":")
        # The portal's policy changes reach this process's engine at once (invalidate).
        policy = PolicyService(self.db, self.policy_settings, on_change=self.policy.invalidate)
        app = create_app(
            self.db,
            FileLayout(self.config.recordings_path),
            dataclasses.replace(
                settings_from_config(self.config, keyring=self.keyring),
                store=open_store(self.config) if self.config.storage.recordings_url else None,
            ),
            policy,
            country_code=self.config.policy.country_code,
        )
        app.state.recorder = self
        kwargs: dict[str, Any] = {}
        if c.tls_certificate:
            kwargs = {"ssl_certfile": c.tls_certificate, "ssl_keyfile": c.tls_private_key}
        config = uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=int(port),
            log_level="warning",
            lifespan="off",
            **kwargs,
        )

        async def serve_portal(sup: Any) -> None:
            from .supervise import bind_tcp

            sock = bind_tcp(host.strip("[]"), int(port))
            server = uvicorn.Server(config)
            # The recorder owns SIGINT/SIGTERM (it must end live sessions first); keep
            # uvicorn's own signal capture out of the way.
            if hasattr(server, "capture_signals"):
                server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            self._web_server = server
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.05)
            if server.started:
                if server.servers:  # the bound port, for the ready file
                    self.web_address = server.servers[0].sockets[0].getsockname()[:2]
                sup.mark_up()
            try:
                await task
            finally:
                sock.close()

        from .supervise import Supervised

        self.portal = Supervised("portal", serve_portal)
        self.portal.start()
        await self.portal.wait_started(5.0)

    async def start_metrics(self, listen: str) -> None:
        """Serve ``/metrics`` on ``listen``, supervised like the portal."""
        from .supervise import Supervised

        metrics = self.metrics
        assert metrics is not None

        async def serve_metrics(sup: Any) -> None:
            try:
                await metrics.start(listen)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from None
            sup.mark_up()
            try:
                await sup.stopping.wait()
            finally:
                await metrics.stop()

        self.metrics_part = Supervised("metrics", serve_metrics)
        self.metrics_part.start()
        await self.metrics_part.wait_started(2.0)

    async def stop(self) -> None:
        if self.portal is not None:

            async def stop_portal() -> None:
                if self._web_server is not None:
                    self._web_server.should_exit = True

            await self.portal.stop(stop_portal)
        if self._notifier is not None:
            await self._notifier.stop()
        if self.assurance is not None:
            await self.assurance.stop()
        if self.purge_schedule is not None:
            await self.purge_schedule.stop()
        if self.srs is not None:
            await self.srs.stop()
        if self.node is not None:
            await self.node.stop(clean=self.srs is None or not self.srs.spool.orphans())
        if self.uploader is not None:
            await self.uploader.stop()
        if self.transcription is not None:
            await self.transcription.stop()
        if self.policy is not None:
            await self.policy.close()
        if self.sip is not None:
            await self.sip.stop()
        if self.metrics_part is not None:
            await self.metrics_part.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.db is not None:
            await self.db.close()


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


async def _serve(config: Config, ready_file: Path | None = None) -> None:
    recorder = Recorder(config)
    try:
        await recorder.start()
    except BaseException:
        # What started (finaliser processes, the index) is stopped; the reason it could not
        # start is what the operator must see, not a follow-on error of the cleanup.
        with contextlib.suppress(Exception):
            await recorder.stop()
        raise
    if recorder.metrics is not None and config.metrics_listen:
        await recorder.start_metrics(config.metrics_listen)
    for line in _where(config, recorder):
        log.info("%s", line)
    if ready_file is not None:
        lines = [f"{t}:{h}:{p}" for t, h, p in recorder.sip.bound]
        if recorder.metrics is not None and recorder.metrics.port is not None:
            lines.append(
                f"metrics:{config.metrics_listen.rpartition(':')[0]}:{recorder.metrics.port}"
            )
        if recorder.web_address is not None:
            lines.append("web:{}:{}".format(*recorder.web_address))
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    log.info("stopping: ending live sessions")
    await recorder.stop()


def _where(config: Config, recorder: Recorder) -> list[str]:
    """What an operator checks first: which configuration, and where everything listens."""
    c = config
    overrides = ", ".join(o.partition("=")[0] for o in c.overrides) or "none"
    lines = [f"configuration {c.source}; environment overrides: {overrides}"]
    if recorder.sip is not None:
        sip = ", ".join(f"{t}:{h}:{p}" for t, h, p in recorder.sip.bound)
        lines.append(
            f"SIP on {sip}; RTP on {c.rtp.address} ports {c.rtp.port_min}-{c.rtp.port_max}"
        )
    if c.web.enabled:
        scheme = "https" if c.web.tls_certificate else "http"
        lines.append(f"portal on {scheme}://{c.web.listen}/")
    else:
        lines.append("portal off ([web] enabled = false)")
    metrics = recorder.metrics
    if c.metrics.listen and metrics is not None and metrics.port is not None:
        host = c.metrics.listen.rpartition(":")[0]
        lines.append(f"metrics on http://{host}:{metrics.port}/metrics")
    elif not c.metrics.listen:
        lines.append("metrics off ([metrics] listen is empty)")
    lines.append(
        f"recordings in {c.recordings_path.resolve()}; index {mask_secret(c.database_url)}"
    )
    return lines


def run(config: Config, ready_file: Path | None = None) -> None:
    """Run the recorder until SIGINT/SIGTERM (uvloop when installed)."""
    setup_logging(config.log.level, config.log.format)
    for warning in (*config.warnings, *exposure_warnings(config)):
        log.warning("%s", warning)
    if any(spec.startswith("tls:") for spec in config.sip.listen):
        # TLS listeners run the handshake with loop.start_tls on an accepted connection (so
        # that a connection still in its handshake counts against the caps); on uvloop 0.23
        # that handshake never answers the ClientHello, so TLS runs on asyncio's own loop.
        asyncio.run(_serve(config, ready_file))
        return
    try:
        import uvloop

        uvloop.run(_serve(config, ready_file))
    except ImportError:
        asyncio.run(_serve(config, ready_file))
