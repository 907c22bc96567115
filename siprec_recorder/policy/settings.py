"""Settings of the recording policy (the ``[policy]`` section of the configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_EMERGENCY_NUMBERS", "PolicySettings", "UnknownNumbers"]

UnknownNumbers = Literal["record", "decline"]

#: Short codes of emergency services in the EU (112), North America (911), the UK (999),
#: Australia (000), Germany/Austria/Switzerland (110, 117, 118, 144), Belgium (100, 101), and
#: every ``urn:service:sos`` service URN (RFC 5031), sub-services included.
DEFAULT_EMERGENCY_NUMBERS: tuple[str, ...] = (
    "112",
    "911",
    "999",
    "000",
    "110",
    "100",
    "101",
    "117",
    "118",
    "144",
    "urn:service:sos",
)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """``[policy]``: time zone of schedules, emergency list, unknown numbers, notifications."""

    timezone: str = "Europe/Brussels"
    emergency_numbers: tuple[str, ...] = field(default=DEFAULT_EMERGENCY_NUMBERS)
    unknown_numbers: UnknownNumbers = "record"
    notify_webhook: str | None = None
    country_code: str = "32"
