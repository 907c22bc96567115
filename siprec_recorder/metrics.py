"""A Prometheus text endpoint (``GET /metrics``) for the ops team.

A small asyncio HTTP/1.0 responder, separate from the portal, so that monitoring keeps
working when the portal is turned off. It reads counters from the running recorder; it
never writes anything.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

__all__ = ["MetricsServer", "render_metrics"]


def render_metrics(recorder: Any) -> str:
    """The Prometheus exposition text of the recorder's counters and gauges."""
    srs = recorder.srs
    c = srs.counters
    lines = [
        "# HELP siprec_invites_total New SIPREC INVITEs received.",
        "# TYPE siprec_invites_total counter",
        f"siprec_invites_total {c.invites}",
        "# HELP siprec_sessions_accepted_total Recording sessions accepted.",
        "# TYPE siprec_sessions_accepted_total counter",
        f"siprec_sessions_accepted_total {c.accepted}",
        "# HELP siprec_sessions_active Recording sessions in progress.",
        "# TYPE siprec_sessions_active gauge",
        f"siprec_sessions_active {len(srs.sessions)}",
        "# HELP siprec_recordings_finished_total Recordings finished and indexed.",
        "# TYPE siprec_recordings_finished_total counter",
        f"siprec_recordings_finished_total {c.finished}",
        "# HELP siprec_recordings_failed_total Recordings whose finalisation failed.",
        "# TYPE siprec_recordings_failed_total counter",
        f"siprec_recordings_failed_total {c.failed}",
        "# HELP siprec_emergency_calls_total Emergency calls seen (never recorded).",
        "# TYPE siprec_emergency_calls_total counter",
        f"siprec_emergency_calls_total {c.emergency}",
        "# HELP siprec_unauthorised_messages_total Messages from sources not in allowed_sources.",
        "# TYPE siprec_unauthorised_messages_total counter",
        f"siprec_unauthorised_messages_total {c.unauthorised}",
        "# HELP siprec_declined_total Calls declined, by reason.",
        "# TYPE siprec_declined_total counter",
    ]
    for reason, n in sorted(c.declined.items()):
        lines.append(f'siprec_declined_total{{reason="{reason}"}} {n}')
    lines += [
        "# HELP siprec_responses_rejected_total Error responses sent, by status.",
        "# TYPE siprec_responses_rejected_total counter",
    ]
    for status, n in sorted(c.rejected.items()):
        lines.append(f'siprec_responses_rejected_total{{status="{status}"}} {n}')
    lines += _budget_lines(recorder)
    lines += [
        "# HELP siprec_finalize_seconds_total Wall time spent finalising recordings.",
        "# TYPE siprec_finalize_seconds_total counter",
        f"siprec_finalize_seconds_total {c.finalize_seconds:.3f}",
    ]
    lines += [
        "# HELP siprec_finalize_queue Recordings ended and waiting for (or in) the finaliser.",
        "# TYPE siprec_finalize_queue gauge",
        f"siprec_finalize_queue {len(getattr(srs, '_finalizing', ()))}",
    ]
    assurance = getattr(recorder, "assurance", None)
    if assurance is not None:
        lines += assurance.metric_lines()
    uploader = getattr(recorder, "uploader", None)
    if uploader is not None:
        u = uploader.counters
        lines += [
            "# HELP siprec_store_uploaded_total Recordings stored and verified in the store.",
            "# TYPE siprec_store_uploaded_total counter",
            f"siprec_store_uploaded_total {u.uploaded}",
            "# HELP siprec_store_upload_failures_total Failed upload attempts (each is retried).",
            "# TYPE siprec_store_upload_failures_total counter",
            f"siprec_store_upload_failures_total {u.failures}",
            "# HELP siprec_store_pending Finished recordings still waiting for the object store.",
            "# TYPE siprec_store_pending gauge",
            f"siprec_store_pending {u.pending}",
            "# HELP siprec_store_bytes_total Bytes stored in the object store.",
            "# TYPE siprec_store_bytes_total counter",
            f"siprec_store_bytes_total {u.bytes}",
        ]
    parts = [p for p in (getattr(recorder, a, None) for a in ("portal", "metrics_part")) if p]
    if parts:
        lines += [
            "# HELP siprec_component_up 1 while a supervised part (portal, metrics) serves.",
            "# TYPE siprec_component_up gauge",
        ]
        lines += [f'siprec_component_up{{component="{p.name}"}} {int(p.up)}' for p in parts]
        lines += [
            "# HELP siprec_component_failures_total Failed starts or crashes of a supervised part.",
            "# TYPE siprec_component_failures_total counter",
        ]
        lines += [
            f'siprec_component_failures_total{{component="{p.name}"}} {p.failures}' for p in parts
        ]
    node = getattr(recorder, "node", None)
    if node is not None:
        lines += [
            "# HELP siprec_cluster_takeovers_total Dead nodes whose spools this node finalised.",
            "# TYPE siprec_cluster_takeovers_total counter",
            f"siprec_cluster_takeovers_total {node.takeovers}",
            "# HELP siprec_cluster_lease_lost_total Times this node found its lease taken.",
            "# TYPE siprec_cluster_lease_lost_total counter",
            f"siprec_cluster_lease_lost_total {node.lease_lost}",
            "# HELP siprec_cluster_heartbeat_failures_total Lease renewals that failed.",
            "# TYPE siprec_cluster_heartbeat_failures_total counter",
            f"siprec_cluster_heartbeat_failures_total {node.heartbeat_failures}",
        ]
    try:
        usage = shutil.disk_usage(srs.recordings_root)
        lines += [
            "# HELP siprec_storage_free_bytes Free space on the recordings share.",
            "# TYPE siprec_storage_free_bytes gauge",
            f"siprec_storage_free_bytes {usage.free}",
            "# HELP siprec_storage_low 1 when free space is below [storage] min_free_mb.",
            "# TYPE siprec_storage_low gauge",
            f"siprec_storage_low {int(usage.free < srs.settings.min_free_mb * 1024 * 1024)}",
        ]
    except OSError:
        pass
    transcription = getattr(recorder, "transcription", None)
    if transcription is not None:
        from .transcription.metrics import transcription_metrics

        lines += transcription_metrics(transcription)
    return "\n".join(lines) + "\n"


def _budget_lines(recorder: Any) -> list[str]:
    """Refusals by budget (the names of the Warning headers and of the transport's log
    lines), refusals that left no index row, and the stream connections open now."""
    srs = recorder.srs
    refused: dict[str, int] = dict(getattr(getattr(srs, "admission", None), "refused", {}))
    sip = getattr(recorder, "sip", None)
    for budget, n in getattr(sip, "refused", {}).items():
        refused[budget] = refused.get(budget, 0) + n
    lines = [
        "# HELP siprec_budget_refusals_total Requests and connections refused (or closed) "
        "because a budget ran out, by budget.",
        "# TYPE siprec_budget_refusals_total counter",
    ]
    lines += [
        f'siprec_budget_refusals_total{{budget="{b}"}} {n}' for b, n in sorted(refused.items())
    ]
    lines += [
        "# HELP siprec_refusals_not_indexed_total Budget refusals that left no index row, by "
        "budget and cause (not-governed: the policy would not record the call; row-limit: "
        "past the source's row budget).",
        "# TYPE siprec_refusals_not_indexed_total counter",
    ]
    not_indexed = getattr(srs.counters, "refusals_not_indexed", {})
    lines += [
        f'siprec_refusals_not_indexed_total{{budget="{b}",cause="{c}"}} {n}'
        for (b, c), n in sorted(not_indexed.items())
    ]
    open_connections = getattr(sip, "open_connections", None)
    if callable(open_connections):
        lines += [
            "# HELP siprec_sip_connections_open SIP stream connections open, by transport "
            "(tls-handshake: TLS not established yet).",
            "# TYPE siprec_sip_connections_open gauge",
        ]
        lines += [
            f'siprec_sip_connections_open{{transport="{k}"}} {n}'
            for k, n in sorted(open_connections().items())
        ]
    return lines


class MetricsServer:
    """Serve :func:`render_metrics` on HOST:PORT."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self, listen: str) -> None:
        if not listen:
            return
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(self._handle, host.strip("[]"), int(port))
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                body = render_metrics(self.recorder).encode()
                head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            else:
                body = b"not found\n"
                head = b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
