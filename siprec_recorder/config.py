"""Configuration: one TOML file -> frozen dataclasses, validated at start.

Every key has a default, so an empty file (or none at all) gives a recorder that runs on a
laptop: SIP on 127.0.0.1:5060 (UDP and TCP), RTP on 127.0.0.1, recordings and a SQLite index
under ``./recordings``. Environment variables override the file: ``SIPREC__SECTION__KEY``
(double underscores), with the value parsed as a TOML value when it is one (``'["udp:..."]'``,
``20000``, ``true``) and taken as a plain string otherwise.

Validation errors are :class:`~siprec_recorder.errors.ConfigError` and always name the key,
e.g. ``[rtp] port_min: must be an even number between 1024 and 65534, got 7``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .policy.settings import DEFAULT_EMERGENCY_NUMBERS, PolicySettings

__all__ = [
    "ClusterConfig",
    "Config",
    "LogConfig",
    "MetricsConfig",
    "PolicyConfig",
    "RecordingConfig",
    "RtpConfig",
    "SipConfig",
    "StorageConfig",
    "WebConfig",
    "load_config",
    "parse_listen",
]


@dataclass(frozen=True, slots=True)
class SipConfig:
    """``[sip]``: signalling listeners, limits and who may send us calls."""

    listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_client_ca: str = ""  # when set, TLS clients must present a certificate signed by it
    allowed_sources: tuple[str, ...] = ()  # CIDRs; empty means loopback only
    unauthorised_response: str = "403"  # "403" or "silence"
    max_message_size: int = 65535
    max_sessions: int = 2000
    max_sessions_per_source: int = 1000
    rate_limit_per_source: float = 0.0  # new INVITEs per second per source; 0 = off
    rate_limit_burst: int = 100
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    session_expires: int = 1800  # RFC 4028 default offered when the SRC asks for timers
    public_host: str = ""  # host put into Contact; empty means the listen address


@dataclass(frozen=True, slots=True)
class RtpConfig:
    """``[rtp]``: media ports and timeouts."""

    address: str = "127.0.0.1"
    advertised_address: str = ""  # c= address in the SDP answer; empty means `address`
    port_min: int = 20000
    port_max: int = 39998
    inactivity_timeout: float = 30.0  # seconds without RTP on every leg ends the session
    jitter_window: int = 64  # packets
    srtp_suites: tuple[str, ...] = (
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    )


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``[storage]``: where recordings and the index live."""

    recordings_dir: str = "./recordings"
    database_url: str = ""  # empty: SQLite inside recordings_dir
    flush_interval: float = 1.0  # seconds between spool fsyncs
    index_batch_window: float = 0.1  # seconds index writes wait to share a transaction
    min_free_mb: int = 200  # below this, new sessions get 503
    retention_years: int = 5
    purge_hour: int = -1  # local hour (0-23) of the daily retention purge in serve; -1 = off
    # Encryption at rest (AES-256-GCM) of finished recordings: a key file (32 bytes, or 64
    # hex digits, or base64) or an environment variable holding the key; both empty = off.
    encryption_key_file: str = ""
    encryption_key_env: str = ""
    encryption_old_key_files: tuple[str, ...] = ()  # retired keys, kept to read old files


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """``[recording]``: what the finished file looks like."""

    channels: str = "mono"  # "mono" or "stereo"
    bitrate_kbps: int = 32
    # LAME's algorithm quality, 0 (slowest) .. 9 (fastest). For 8/16 kHz speech at 32 kbit/s,
    # 7 sounds the same as 5 and encodes about twice as fast.
    mp3_quality: int = 7
    workers: int = 1  # finaliser processes (decode, mix, MP3)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """``[policy]``: which calls are recorded."""

    timezone: str = "Europe/Brussels"
    emergency_numbers: tuple[str, ...] = DEFAULT_EMERGENCY_NUMBERS
    unknown_numbers: str = "record"  # "record" or "decline"
    notify_webhook: str = ""
    country_code: str = "32"


@dataclass(frozen=True, slots=True)
class WebConfig:
    """``[web]``: the portal."""

    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    tls_certificate: str = ""
    tls_private_key: str = ""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus endpoint."""

    listen: str = "127.0.0.1:9160"  # empty turns it off


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """``[cluster]``: this node's id and lease (one node alone needs nothing here)."""

    node_id: str = ""  # empty: the host name
    lease_seconds: float = 15.0  # no heartbeat for this long: the node is dead
    heartbeat_interval: float = 3.0
    takeover_check_interval: float = 5.0  # how often survivors look for dead nodes


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: logging."""

    level: str = "INFO"
    format: str = "text"  # "text" or "json"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    sip: SipConfig = field(default_factory=SipConfig)
    rtp: RtpConfig = field(default_factory=RtpConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = "<defaults>"

    @property
    def recordings_path(self) -> Path:
        return Path(self.storage.recordings_dir)

    def policy_settings(self) -> PolicySettings:
        """The ``[policy]`` section as the policy layer's own settings object."""
        p = self.policy
        return PolicySettings(
            timezone=p.timezone,
            emergency_numbers=tuple(p.emergency_numbers),
            unknown_numbers="decline" if p.unknown_numbers == "decline" else "record",
            notify_webhook=p.notify_webhook or None,
            country_code=p.country_code,
        )

    @property
    def metrics_listen(self) -> str:
        return self.metrics.listen

    @property
    def database_url(self) -> str:
        if self.storage.database_url:
            return self.storage.database_url
        path = self.recordings_path.resolve() / "index.sqlite3"
        return f"sqlite+aiosqlite:///{path}"


_SECTIONS: dict[str, type[Any]] = {
    "sip": SipConfig,
    "rtp": RtpConfig,
    "storage": StorageConfig,
    "recording": RecordingConfig,
    "policy": PolicyConfig,
    "web": WebConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "cluster": ClusterConfig,
}


def parse_listen(spec: str) -> tuple[str, str, int]:
    """Parse ``udp:127.0.0.1:5060`` / ``tcp:[::1]:5060`` into (transport, host, port)."""
    transport, sep, rest = spec.partition(":")
    transport = transport.lower()
    if not sep or transport not in ("udp", "tcp", "tls"):
        raise ValueError(f"expected udp:|tcp:|tls:HOST:PORT, got {spec!r}")
    if rest.startswith("["):
        host, sep2, port_s = rest[1:].partition("]:")
        if not sep2:
            raise ValueError(f"bad IPv6 listen address {spec!r}")
    else:
        host, sep2, port_s = rest.rpartition(":")
        if not sep2:
            raise ValueError(f"missing port in {spec!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad port in {spec!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {spec!r}")
    return transport, host, port


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {key}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported value {value!r}")  # pragma: no cover


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith("SIPREC__"):
            continue
        parts = name[len("SIPREC__") :].lower().split("__")
        if len(parts) != 2:
            raise ConfigError(f"environment {name}: expected SIPREC__SECTION__KEY")
        section, key = parts
        data.setdefault(section, {})[key] = _env_value(raw)


def build_config(data: Mapping[str, Any], source: str = "<memory>") -> Config:
    """Validate a parsed TOML mapping and build a :class:`Config`."""
    built: dict[str, Any] = {}
    for section, value in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"[{section}]: unknown section (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}]: expected a table")
        cls = _SECTIONS[section]
        defaults = cls()
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, v in value.items():
            if key not in known:
                raise ConfigError(f"[{section}] {key}: unknown key")
            kwargs[key] = _coerce(section, key, v, getattr(defaults, key))
        built[section] = cls(**kwargs)
    config = Config(**built, source=source)
    _validate(config)
    return config


def _validate(c: Config) -> None:
    if not c.sip.listen:
        raise ConfigError("[sip] listen: at least one listener is needed")
    for spec in c.sip.listen:
        try:
            transport, _host, _port = parse_listen(spec)
        except ValueError as exc:
            raise ConfigError(f"[sip] listen: {exc}") from None
        if transport == "tls" and not (c.sip.tls_certificate and c.sip.tls_private_key):
            raise ConfigError(
                "[sip] tls_certificate: a tls: listener needs tls_certificate and tls_private_key"
            )
    for cidr in c.sip.allowed_sources:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"[sip] allowed_sources: {cidr!r} is not a CIDR") from None
    if c.sip.unauthorised_response not in ("403", "silence"):
        raise ConfigError('[sip] unauthorised_response: must be "403" or "silence"')
    if not 1024 <= c.sip.max_message_size <= 1_048_576:
        raise ConfigError("[sip] max_message_size: must be between 1024 and 1048576")
    for key in ("max_sessions", "max_sessions_per_source"):
        if getattr(c.sip, key) < 1:
            raise ConfigError(f"[sip] {key}: must be at least 1")
    if not 0 < c.sip.t1 <= c.sip.t2:
        raise ConfigError("[sip] t1: must be positive and not above t2")
    try:
        ipaddress.ip_address(c.rtp.address)
    except ValueError:
        raise ConfigError(f"[rtp] address: {c.rtp.address!r} is not an IP address") from None
    for key in ("port_min", "port_max"):
        v = getattr(c.rtp, key)
        if not (1024 <= v <= 65534) or v % 2:
            raise ConfigError(
                f"[rtp] {key}: must be an even number between 1024 and 65534, got {v}"
            )
    if c.rtp.port_max - c.rtp.port_min < 2:
        raise ConfigError("[rtp] port_max: must be at least port_min + 2")
    if c.rtp.inactivity_timeout <= 0:
        raise ConfigError("[rtp] inactivity_timeout: must be positive")
    if not 4 <= c.rtp.jitter_window <= 4096:
        raise ConfigError("[rtp] jitter_window: must be between 4 and 4096 packets")
    if not c.storage.recordings_dir:
        raise ConfigError("[storage] recordings_dir: must not be empty")
    if c.storage.flush_interval <= 0 or c.storage.flush_interval > 10:
        raise ConfigError("[storage] flush_interval: must be in (0, 10] seconds")
    if not 0 <= c.storage.index_batch_window <= 5:
        raise ConfigError("[storage] index_batch_window: must be between 0 and 5 seconds")
    if c.storage.min_free_mb < 0:
        raise ConfigError("[storage] min_free_mb: must not be negative")
    if not -1 <= c.storage.purge_hour <= 23:
        raise ConfigError("[storage] purge_hour: an hour 0-23, or -1 for no scheduled purge")
    if not 1 <= c.storage.retention_years <= 100:
        raise ConfigError("[storage] retention_years: must be between 1 and 100")
    if c.storage.database_url and "://" not in c.storage.database_url:
        raise ConfigError("[storage] database_url: expected a URL such as sqlite+aiosqlite:///x")
    if c.storage.encryption_key_file and c.storage.encryption_key_env:
        raise ConfigError(
            "[storage] encryption_key_file: set either it or encryption_key_env, not both"
        )
    if c.storage.encryption_old_key_files and not (
        c.storage.encryption_key_file or c.storage.encryption_key_env
    ):
        raise ConfigError("[storage] encryption_old_key_files: needs a current key as well")
    if c.recording.channels not in ("mono", "stereo"):
        raise ConfigError('[recording] channels: must be "mono" or "stereo"')
    if c.recording.bitrate_kbps not in (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128):
        raise ConfigError("[recording] bitrate_kbps: must be an MP3 bitrate (8..128)")
    if not 0 <= c.recording.mp3_quality <= 9:
        raise ConfigError("[recording] mp3_quality: must be between 0 (best) and 9 (fastest)")
    if not 1 <= c.recording.workers <= 64:
        raise ConfigError("[recording] workers: must be between 1 and 64")
    try:
        ZoneInfo(c.policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[policy] timezone: unknown time zone {c.policy.timezone!r}") from None
    if c.policy.unknown_numbers not in ("record", "decline"):
        raise ConfigError('[policy] unknown_numbers: must be "record" or "decline"')
    if not c.policy.country_code.isdigit():
        raise ConfigError("[policy] country_code: digits only, e.g. 32")
    if c.web.enabled:
        host, sep, port = c.web.listen.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"[web] listen: expected HOST:PORT, got {c.web.listen!r}")
    if c.metrics.listen:
        host, sep, port = c.metrics.listen.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"[metrics] listen: expected HOST:PORT, got {c.metrics.listen!r}")
    _validate_cluster(c.cluster)
    if c.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("[log] level: one of DEBUG, INFO, WARNING, ERROR")
    if c.log.format not in ("text", "json"):
        raise ConfigError('[log] format: "text" or "json"')


def _validate_cluster(c: ClusterConfig) -> None:
    import re

    if c.node_id and not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}", c.node_id):
        raise ConfigError(
            f"[cluster] node_id: letters, digits, '.', '_' and '-' (up to 64), got {c.node_id!r}"
        )
    if c.heartbeat_interval <= 0:
        raise ConfigError("[cluster] heartbeat_interval: must be positive")
    if c.lease_seconds < 3 * c.heartbeat_interval:
        raise ConfigError("[cluster] lease_seconds: must be at least 3 x heartbeat_interval")
    if c.takeover_check_interval <= 0:
        raise ConfigError("[cluster] takeover_check_interval: must be positive")


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or only defaults when None), apply ``SIPREC__*`` overrides, validate."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p}: {exc}") from None
        source = str(p)
    _merge_env(data, os.environ if environ is None else environ)
    return build_config(data, source)
