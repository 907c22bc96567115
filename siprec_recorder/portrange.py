"""Does the RTP port range overlap the kernel's ephemeral ports?

Linux hands out ports from ``net.ipv4.ip_local_port_range`` (32768-60999 by default) to
every outgoing connection of the machine (the index's PostgreSQL connection, S3 uploads,
LDAP): an RTP port in that range can be taken by one of them, and a pair that cannot be
bound is a call that cannot be recorded. The shipped range stays below it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ephemeral_overlap"]

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_overlap(
    port_min: int, port_max: int, path: Path = EPHEMERAL_RANGE
) -> tuple[int, int] | None:
    """The kernel's ephemeral range when ``port_min..port_max+1`` overlaps it, else None."""
    try:
        low, high = (int(v) for v in path.read_text().split()[:2])
    except (OSError, ValueError):
        return None
    if port_min <= high and port_max + 1 >= low:
        return low, high
    return None
