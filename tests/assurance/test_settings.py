"""``[reconcile]`` and ``[alerts]``: errors name the key; channels built from the config."""

from __future__ import annotations

import pytest

from siprec_recorder.assurance.settings import build_channels, channel_names, layout_named
from siprec_recorder.config import build_config
from siprec_recorder.errors import ConfigError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reconcile": {"layout": "excel"}}, "[reconcile] layout: one of auto, generic"),
        ({"reconcile": {"columns": ["start=a"]}}, "[reconcile] columns: needs start, caller"),
        ({"reconcile": {"layout": "custom"}}, "[reconcile] columns: the custom layout needs"),
        ({"reconcile": {"timezone": "Mars/Olympus"}}, "[reconcile] timezone: unknown"),
        ({"reconcile": {"match_window_s": 0}}, "[reconcile] match_window_s: must be positive"),
        ({"alerts": {"syslog": "udp:host"}}, "[alerts] syslog: expected udp:HOST:PORT"),
        ({"alerts": {"smtp_host": "mx"}}, "[alerts] smtp_from: e-mail alerts need"),
        ({"alerts": {"webhook_url": "ftp://x"}}, "[alerts] webhook_url: expected an http"),
        ({"alerts": {"business_hours": ["someday 8-9"]}}, "[alerts] business_hours:"),
        ({"alerts": {"retry_base": 10.0, "retry_max": 1.0}}, "[alerts] retry_max: must not"),
        ({"alerts": {"syslog_facility": 40}}, "[alerts] syslog_facility: must be between"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(data)
    assert str(err.value).startswith(message), str(err.value)


def test_channels_and_layouts_from_the_config() -> None:
    c = build_config(
        {
            "alerts": {
                "webhook_url": "https://hooks.firm.test/x",
                "smtp_host": "mx.firm.test",
                "smtp_from": "rec@firm.test",
                "smtp_to": ["ops@firm.test"],
                "syslog": "tcp:[::1]:6514",
            },
            "reconcile": {"columns": ["start=S", "duration=D", "caller=A", "callee=B"]},
        }
    )
    assert [ch.name for ch in build_channels(c.alerts)] == ["webhook", "email", "syslog"]
    syslog = build_channels(c.alerts)[2]
    assert (syslog.transport, syslog.host, syslog.port) == ("tcp", "::1", 6514)
    layout = layout_named(c.reconcile, None)
    assert layout is not None and layout.name == "custom" and layout.duration == "D"
    assert layout_named(c.reconcile, "cucm") is not None
    off = build_config({"alerts": {"enabled": False, "webhook_url": "http://x"}})
    assert channel_names(off.alerts) == []
    assert layout_named(build_config({}).reconcile, None) is None  # detect from the header
