"""Turn a spooled recording session into its finished MP3, sidecar and index facts.

Theory of operation: while a call lasts, each leg's RTP payloads go to an append-only spool
file (fsync'd about once a second) beside a JSON manifest that says what the call is (call id,
participants, labels, codecs, start). :func:`finalize_spool` is a plain function of that
directory: it decodes every leg, lays them on one timeline, mixes or interleaves them, encodes
MP3, writes the file and its sidecar by atomic rename, and returns what the index needs. A leg
whose codec cannot be decoded is silence in the MP3, so its packets are kept beside it as a
pcap (``<mp3 name>.leg<n>.pcap``) that the sidecar's stream names under ``raw_rtp``: the spool
is removed once the recording is indexed, and nothing received is dropped silently.

It runs in a worker process (never on the event loop that receives packets), and it is the
same function at the end of a call and at start-up for spools a crash left behind: its output
path depends only on the manifest, so running it twice gives the same file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..isotime import utc_iso

if TYPE_CHECKING:  # imported lazily at run time: workers load them in warm_up
    from ..rtp.render import LegMedia, Rendered
    from ..rtp.spoolfmt import SpoolRecord
    from ..storage.files import FileLayout

__all__ = ["FinalizeResult", "finalize_spool"]


@dataclass(frozen=True, slots=True)
class FinalizeResult:
    """What a finished recording is, for the index."""

    rec_id: str
    file: str | None
    sidecar: str | None
    sha256: str | None
    size_bytes: int
    duration_s: float
    sample_rate: int
    channels: int
    end: str  # ISO 8601 UTC
    state: str
    reason: str | None
    streams: list[dict[str, Any]]
    dtmf: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def watch_recorder(recorder_pid: int) -> None:
    """Worker initializer: end this worker as soon as the recorder process is gone.

    A worker does not notice by itself (it waits on a queue whose write end it also holds),
    and one left running after a crash could finish a spool while the restarted recorder
    recovers the same spool. ``pidfd_open`` makes the wait exact; elsewhere it polls.
    """
    import select
    import signal
    import threading
    import time

    # Ctrl-C reaches the whole process group; the recorder ends its workers itself once the
    # live calls are finalised, so a worker must neither die early nor print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        try:
            fd = os.pidfd_open(recorder_pid)
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):
            while True:
                time.sleep(0.5)
                try:
                    os.kill(recorder_pid, 0)
                except ProcessLookupError:
                    os._exit(1)
                except PermissionError:
                    pass
        select.select([fd], [], [])  # readable once the process has exited
        os._exit(1)

    threading.Thread(target=watch, name="recorder-watch", daemon=True).start()


def warm_up() -> int:
    """Load what :func:`finalize_spool` needs (run once in each worker at start-up)."""
    import numpy as np

    from ..rtp import render  # noqa: F401  (imports the codecs too)
    from ..storage.mp3 import encode_mp3

    encode_mp3(np.zeros((1152, 1), np.int16), 8000, 32)
    return os.getpid()


def _keep_raw_rtp(
    layout: FileLayout, rel: str, records: Iterable[SpoolRecord], port: int, key: Any
) -> dict[str, Any]:
    """Write a leg's spooled packets as a pcap at ``rel``; returns what the sidecar says.

    The leg's codec could not be decoded, so the MP3 holds silence for it: its packets are
    kept as they were received (RTP header rebuilt from the spooled fields, in spool order,
    stamped with their arrival times), addressed from 192.0.2.1 (RFC 5737: the spool does
    not keep the sender's address) to 192.0.2.2 on the leg's port, encrypted like the MP3
    when the recording is.
    """
    from ..rtp.pcapio import UdpDatagram, write_udp_pcap

    records = list(records)
    data = write_udp_pcap(
        UdpDatagram(r.arrival, "192.0.2.1", "192.0.2.2", 0, port, r.to_rtp()) for r in records
    )
    if key is not None:
        from ..compliance.crypto import encrypt_bytes

        data, _ = encrypt_bytes(data, key)
    sha, size = layout.write_atomic(rel, data)
    return {
        "file": os.path.basename(rel),
        "format": "pcap",
        "packets": len(records),
        "sha256": sha,
        "size_bytes": size,
        "encrypted": key is not None,
    }


def finalize_spool(
    spool_root: str,
    rec_id: str,
    recordings_root: str,
    state: str,
    ended_at: float | None,
    final_stats: dict[str, dict[str, Any]] | None = None,
    reason: str | None = None,
    keyring: Any = None,
    *,
    extend_to_end: bool = False,
    leg_audio_dir: str | None = None,
    spool_node: str = "",
) -> dict[str, Any]:
    """Finish the spooled session ``rec_id``; returns :class:`FinalizeResult` as a dict.

    ``state`` is ``complete`` for a call that ended normally and ``interrupted`` for one
    recovered after a crash. ``final_stats`` are the live receivers' per-leg statistics
    (None after a crash: the statistics are then computed from the spooled packets alone).
    ``extend_to_end`` says that the recording runs to ``ended_at`` (silence after the last
    packet); only the live call knows it, so it is an argument, not in the manifest.
    ``leg_audio_dir``, when set, receives each leg's audio alone for the transcriber.
    ``spool_node`` is the node whose spool store holds the session ("" for the folders of a
    recorder without node ids).
    """
    from ..rtp.render import render_call
    from ..storage.files import FileLayout
    from ..storage.spool import SpoolStore

    spool = SpoolStore(Path(spool_root), spool_node).get(rec_id)
    manifest = spool.manifest
    started_at = float(manifest["started_at"])
    legs = _leg_media(spool, manifest)
    rendered = render_call(legs, channels=manifest["channels"], session_start=started_at)
    if extend_to_end and ended_at is not None:
        rendered = _extended_to(rendered, ended_at - started_at)
    end_ts = ended_at if ended_at is not None else started_at + rendered.duration_s
    end_ts = max(end_ts, started_at)
    streams = _stream_facts(manifest, rendered, final_stats)
    dtmf = [
        {"label": label, "digit": digit, "at_s": round(at, 3), "duration_ms": dur}
        for (label, digit, at, dur) in rendered.dtmf
    ]
    # Silence padded to the session's end is not media: a call whose packets never came
    # (an SRC that refused our answer) must not read "complete".
    any_media = any(s.get("packets_received", 0) for s in streams)
    reason = _reason_of(streams, reason, any_media)
    layout = FileLayout(Path(recordings_root))
    pcm = rendered.pcm
    channels = int(pcm.shape[1]) if pcm.ndim == 2 else 1
    file_rel, sha, size = None, None, 0
    if len(pcm) > 0:
        key = _key_of(manifest, keyring)
        file_rel, sha, size = _write_audio(layout, rec_id, manifest, rendered, key)
        _keep_undecodable(layout, file_rel, manifest, legs, streams, key)
        if leg_audio_dir is not None:
            from ..transcription.legaudio import write_leg_audio

            write_leg_audio(
                leg_audio_dir, rec_id, manifest["legs"], rendered.tracks, rendered.sample_rate, key
            )
    if state == "complete" and (not any_media or len(pcm) == 0):
        state = "failed"
    result = FinalizeResult(
        rec_id=rec_id,
        file=file_rel,
        sidecar=None,
        sha256=sha,
        size_bytes=size,
        duration_s=round(rendered.duration_s, 3),
        sample_rate=rendered.sample_rate,
        channels=channels,
        end=utc_iso(end_ts),
        state=state,
        reason=reason,
        streams=streams,
        dtmf=dtmf,
    )
    if file_rel is not None:
        doc = _sidecar(result, manifest, rendered, started_at)
        sidecar_rel = layout.write_sidecar(file_rel, json.loads(json.dumps(doc, default=str)))
        result = dataclasses.replace(result, sidecar=sidecar_rel)
    return result.to_dict()


def _leg_media(spool: Any, manifest: dict[str, Any]) -> list[LegMedia]:
    """Each leg of the manifest with its spooled packets, read as columns."""
    from ..rtp.render import LegMedia

    legs = []
    for leg in manifest["legs"]:
        rtpmaps = {
            int(pt): (str(v[0]), int(v[1]), v[2] if len(v) > 2 else None)
            for pt, v in leg["rtpmaps"].items()
        }
        legs.append(
            LegMedia(
                label=leg["label"],
                records=spool.read_leg(leg["label"]),
                rtpmaps=rtpmaps,
                role=leg.get("participant_id"),
            )
        )
    return legs


def _extended_to(rendered: Rendered, duration_s: float) -> Rendered:
    """The session went on after the last packet (hold without resume, a paused stream):
    that silence is part of the call, so the recording runs to the session's end."""
    missing = int(round((duration_s - rendered.duration_s) * rendered.sample_rate))
    if missing <= 0:
        return rendered
    import numpy as np

    pad = np.zeros((missing, rendered.pcm.shape[1]), dtype=rendered.pcm.dtype)
    return dataclasses.replace(
        rendered,
        pcm=np.concatenate([rendered.pcm, pad]),
        duration_s=rendered.duration_s + missing / rendered.sample_rate,
    )


def _stream_facts(
    manifest: dict[str, Any],
    rendered: Rendered,
    final_stats: dict[str, dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """What the index and the sidecar say of each leg: the render's facts, the live
    receiver's statistics over them, and why a leg has no audio."""
    streams: list[dict[str, Any]] = []
    for leg in manifest["legs"]:
        label = leg["label"]
        info: dict[str, Any] = dict(rendered.per_leg.get(label, {}))
        if final_stats and label in final_stats:
            info.update(final_stats[label])
        info.setdefault("codec", leg.get("codec"))
        info["label"] = label
        info["stream_id"] = leg.get("stream_id")
        info["participant_id"] = leg.get("participant_id")
        info["srtp"] = bool(leg.get("srtp"))
        if info.get("status") == "no_media" and int(info.get("srtp_auth_failures") or 0) > 0:
            # Packets came but none passed SRTP authentication (a wrong or stale key):
            # nothing was decoded, and the row says why rather than "no media".
            info["status"] = "auth_failed"
        streams.append(info)
    return streams


def _reason_of(streams: list[dict[str, Any]], reason: str | None, any_media: bool) -> str | None:
    auth_failed = [str(s["label"]) for s in streams if s.get("status") == "auth_failed"]
    if auth_failed:
        # The call's row says so too, whatever else it says (a wrong key is not "no media",
        # and a recording missing a leg for it must not look whole).
        note = "SRTP authentication failed on every packet of stream " + ", ".join(auth_failed)
        return note if reason is None else f"{reason}; {note}"
    if not any_media and reason is None:
        return "no media received"
    return reason


def _key_of(manifest: dict[str, Any], keyring: Any) -> Any:
    """The key the recording is encrypted with (None: written in clear)."""
    key_id = manifest.get("key_id")
    if not key_id:
        return None
    key = keyring.get(key_id) if keyring is not None else None
    if key is None:
        # Never write in clear a recording meant to be encrypted: keep the spool.
        raise RuntimeError(f"encryption key {key_id} is not configured")
    return key


def _write_audio(
    layout: FileLayout, rec_id: str, manifest: dict[str, Any], rendered: Rendered, key: Any
) -> tuple[str, str, int]:
    """Encode and write the MP3 (encrypted with ``key`` if any): path, sha256, size."""
    from ..storage.mp3 import encode_mp3

    mp3 = encode_mp3(
        rendered.pcm,
        rendered.sample_rate,
        int(manifest["bitrate_kbps"]),
        # Manifests written before the setting existed were encoded at LAME's 5.
        quality=int(manifest.get("mp3_quality", 5)),
    )
    if key is not None:
        from ..compliance.crypto import encrypt_bytes

        mp3, _ = encrypt_bytes(mp3, key)
    file_rel = layout.relative_path(
        manifest.get("recorded_number"),
        datetime.fromtimestamp(float(manifest["started_at"]), UTC),
        manifest.get("direction", "unknown"),
        manifest.get("other_number"),
        rec_id,
    )
    sha, size = layout.write_atomic(file_rel, mp3)
    return file_rel, sha, size


def _keep_undecodable(
    layout: FileLayout,
    file_rel: str,
    manifest: dict[str, Any],
    legs: list[LegMedia],
    streams: list[dict[str, Any]],
    key: Any,
) -> None:
    """The packets of each leg we could not decode, kept as a pcap beside the MP3."""
    kept = zip(manifest["legs"], legs, streams, strict=True)
    for number, (leg, leg_media, info) in enumerate(kept, start=1):
        if info.get("unsupported_encodings"):
            rel = layout.raw_rtp_of(file_rel, number)
            port = int(leg.get("port") or 0)
            records = leg_media.table().records()
            info["raw_rtp"] = _keep_raw_rtp(layout, rel, records, port, key)


def _sidecar(
    result: FinalizeResult, manifest: dict[str, Any], rendered: Rendered, started_at: float
) -> dict[str, Any]:
    """The JSON document beside the MP3: the recording without the index."""
    from ..storage.waveform import waveform_peaks

    assert result.file is not None
    retention_years = int(manifest.get("retention_years", 5))
    start_dt = datetime.fromtimestamp(started_at, UTC)
    return {
        "format": "siprec-recorder/1",
        "id": result.rec_id,
        "call_id": manifest.get("call_id"),
        "siprec_session_id": manifest.get("siprec_session_id"),
        "state": result.state,
        "reason": result.reason,
        "start": utc_iso(started_at),
        "end": result.end,
        "duration_s": result.duration_s,
        "direction": manifest.get("direction"),
        "recorded_number": manifest.get("recorded_number"),
        "other_number": manifest.get("other_number"),
        "beep": manifest.get("beep", False),
        "source": manifest.get("source"),
        "origin": manifest.get("origin"),
        "file": os.path.basename(result.file),
        "sha256": result.sha256,
        "size_bytes": result.size_bytes,
        "key_id": manifest.get("key_id"),
        "audio": {
            "codec": "mp3",
            "sample_rate": rendered.sample_rate,
            "channels": result.channels,
        },
        "waveform": waveform_peaks(rendered.pcm, rendered.sample_rate),
        "participants": manifest.get("participants", []),
        "participant_history": manifest.get("participant_history", []),
        "streams": result.streams,
        "dtmf": result.dtmf,
        "metadata": manifest.get("metadata"),
        "retention_until": utc_iso(
            (start_dt + timedelta(days=round(365.25 * retention_years))).timestamp()
        ),
    }
