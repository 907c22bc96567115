"""``[reconcile]`` and ``[alerts]``: validation, and the objects built from them.

Only the configuration module calls the validators, and only the composition root and the
CLI call the builders; everything else gets what they build handed to it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siprec_recorder.errors import ConfigError, LocalProtocolError

from .cdr import PRESETS, Layout, custom_layout

__all__ = [
    "LAYOUT_NAMES",
    "alert_settings",
    "build_channels",
    "channel_names",
    "layout_named",
    "validate_alerts",
    "validate_reconcile",
]

LAYOUT_NAMES: tuple[str, ...] = ("auto", *PRESETS, "custom")


def layout_named(reconcile: Any, name: str | None) -> Layout | None:
    """The layout ``name`` (a preset, ``custom``, or ``auto``/None: detect from the header)."""
    name = (name or reconcile.layout or "auto").strip().lower()
    if name == "auto":
        if reconcile.columns:
            return custom_layout(reconcile.columns, reconcile.time_format)
        return None
    if name == "custom":
        if not reconcile.columns:
            raise ConfigError("[reconcile] columns: the custom layout needs its columns named")
        return custom_layout(reconcile.columns, reconcile.time_format)
    if name not in PRESETS:
        raise ConfigError(f"unknown CDR layout {name!r} (one of {', '.join(LAYOUT_NAMES)})")
    return PRESETS[name]


def validate_reconcile(r: Any) -> None:
    if r.layout.strip().lower() not in LAYOUT_NAMES:
        raise ConfigError(f"[reconcile] layout: one of {', '.join(LAYOUT_NAMES)}")
    if r.columns:
        try:
            custom_layout(r.columns, r.time_format)
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
    elif r.layout.strip().lower() == "custom":
        raise ConfigError("[reconcile] columns: the custom layout needs its columns named")
    try:
        ZoneInfo(r.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[reconcile] timezone: unknown time zone {r.timezone!r}") from None
    if r.tolerance_s < 0:
        raise ConfigError("[reconcile] tolerance_s: must not be negative")
    if r.match_window_s <= 0:
        raise ConfigError("[reconcile] match_window_s: must be positive")
    if r.watch_interval <= 0:
        raise ConfigError("[reconcile] watch_interval: must be positive")


def _parse_syslog(spec: str) -> tuple[str, str, int]:
    transport, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if transport not in ("udp", "tcp") or not host or not port.isdigit():
        raise ConfigError(f"[alerts] syslog: expected udp:HOST:PORT or tcp:HOST:PORT, got {spec!r}")
    if not 0 < int(port) < 65536:
        raise ConfigError(f"[alerts] syslog: port out of range in {spec!r}")
    return transport, host.strip("[]"), int(port)


def validate_alerts(a: Any) -> None:
    from siprec_recorder.policy.schedule import Slot

    for key in ("check_interval", "retry_base", "retry_max", "ledger_check_interval"):
        if getattr(a, key) <= 0:
            raise ConfigError(f"[alerts] {key}: must be positive")
    if a.retry_max < a.retry_base:
        raise ConfigError("[alerts] retry_max: must not be below retry_base")
    if a.webhook_url and not a.webhook_url.startswith(("http://", "https://")):
        raise ConfigError("[alerts] webhook_url: expected an http:// or https:// URL")
    if a.smtp_host and not (a.smtp_from and a.smtp_to):
        raise ConfigError("[alerts] smtp_from: e-mail alerts need smtp_from and smtp_to")
    if not 0 < a.smtp_port < 65536:
        raise ConfigError("[alerts] smtp_port: must be a port number")
    if a.syslog:
        _parse_syslog(a.syslog)
    if not 0 <= a.syslog_facility <= 23:
        raise ConfigError("[alerts] syslog_facility: must be between 0 and 23")
    for spec in a.business_hours:
        try:
            Slot.parse(spec)
        except Exception as exc:  # noqa: BLE001 - the slot parser's own message is the clearest
            raise ConfigError(f"[alerts] business_hours: {exc}") from None
    if a.src_silence_minutes <= 0:
        raise ConfigError("[alerts] src_silence_minutes: must be positive")
    if a.storage_free_mb < 0:
        raise ConfigError("[alerts] storage_free_mb: must not be negative")


def build_channels(a: Any) -> list[Any]:
    """The configured channels (webhook, email, syslog), in that order."""
    from .channels import SmtpChannel, SyslogChannel, WebhookChannel

    out: list[Any] = []
    if a.webhook_url:
        out.append(WebhookChannel(a.webhook_url, a.webhook_secret))
    if a.smtp_host:
        out.append(
            SmtpChannel(
                a.smtp_host,
                a.smtp_port,
                a.smtp_from,
                tuple(a.smtp_to),
                starttls=a.smtp_starttls,
                user=a.smtp_user,
                password=a.smtp_password,
                ca_file=a.smtp_ca_file,
            )
        )
    if a.syslog:
        transport, host, port = _parse_syslog(a.syslog)
        out.append(SyslogChannel(transport, host, port, facility=a.syslog_facility))
    return out


def channel_names(a: Any) -> list[str]:
    """The names of the configured channels (what an alert is queued for)."""
    return [c.name for c in build_channels(a)] if a.enabled else []


def alert_settings(config: Any) -> Any:
    from .alerts import AlertSettings

    a = config.alerts
    return AlertSettings(
        check_interval_s=a.check_interval,
        retry_base_s=a.retry_base,
        retry_max_s=a.retry_max,
        src_sources=tuple(a.src_sources),
        src_silence_minutes=a.src_silence_minutes,
        business_hours=tuple(a.business_hours),
        timezone=config.policy.timezone,
        storage_free_mb=a.storage_free_mb,
        ledger_check_interval_s=a.ledger_check_interval,
        lease_seconds=config.cluster.lease_seconds,
    )
