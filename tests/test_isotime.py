from datetime import UTC, datetime, timedelta, timezone

from siprec_recorder.isotime import utc_iso


def test_aware_naive_posix_and_none() -> None:
    brussels = timezone(timedelta(hours=1))
    assert utc_iso(datetime(2026, 3, 2, 10, 30, 1, 500000, tzinfo=brussels)) == (
        "2026-03-02T09:30:01.500000Z"
    )
    assert utc_iso(datetime(2026, 3, 2, 9, 30)) == "2026-03-02T09:30:00Z"  # naive: UTC
    assert utc_iso(datetime(2026, 3, 2, 9, 30, tzinfo=UTC).timestamp()) == "2026-03-02T09:30:00Z"
    assert utc_iso(None) is None
