"""The business calendar of the figures: local days and hours in the configured time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_day(ts: float, zone: ZoneInfo) -> date:
    """The business day a moment falls on."""
    return datetime.fromtimestamp(ts, zone).date()


def local_hour(ts: float, zone: ZoneInfo) -> int:
    """The local hour (0-23) a moment falls in."""
    return datetime.fromtimestamp(ts, zone).hour


def day_bounds(day: date, zone: ZoneInfo) -> tuple[float, float]:
    """Unix seconds of a business day's start and of the next day's start."""
    start = datetime.combine(day, time(0), zone).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(0), zone).timestamp()
    return start, end


def iso_local(ts: float | None, zone: ZoneInfo) -> str | None:
    """A moment as local ISO 8601 with its UTC offset."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def utc(ts: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)
