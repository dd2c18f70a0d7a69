"""Values a person reads, written server-side as the page scripts write them (common.js):
times in the department's zone (``kpi.timezone``; the database keeps UTC), 24-hour in both
languages; Russian 07.12.2026 14:05:09, English 7 Dec 2026, 14:05:09; durations 2 мин 05 с."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.dates import format_datetime

from pbxbridge.web.i18n import _, language

# CLDR patterns; English reads the month's name, so no reader takes 07.12 for July the 12th.
_MOMENT = {"ru": "dd.MM.y HH:mm:ss", "en": "d MMM y, HH:mm:ss"}
_DAY = {"ru": "dd.MM.y", "en": "d MMM y"}
_LOCALES = {"ru": "ru_RU", "en": "en_GB"}


def zone(request: web.Request) -> ZoneInfo:
    """The department's time zone."""
    from pbxbridge.web.context import ctx

    return ZoneInfo(ctx(request).config.kpi.timezone)


def local(request: web.Request, moment: datetime) -> datetime:
    """A stored moment (UTC; naive means UTC) in the department's time zone."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone(request))


def fmt_time(request: web.Request, moment: datetime | None) -> str:
    """07.12.2026 14:05:09 / 7 Dec 2026, 14:05:09."""
    if moment is None:
        return "—"
    code = language(request)
    return format_datetime(local(request, moment), _MOMENT[code], locale=_LOCALES[code])


def fmt_date(request: web.Request, day: date | datetime | None) -> str:
    """07.12.2026 / 7 Dec 2026; a moment is taken on the department's calendar."""
    if day is None:
        return "—"
    code = language(request)
    if isinstance(day, datetime):
        day = local(request, day).date()
    return format_datetime(datetime(day.year, day.month, day.day), _DAY[code], locale=_LOCALES[code])


def fmt_time_of_day(request: web.Request, moment: datetime) -> str:
    """14:05, in the department's time zone."""
    return local(request, moment).strftime("%H:%M")


def fmt_duration(request: web.Request, seconds: float | None) -> str:
    """45 с, 2 мин 05 с, 1 ч 02 мин 05 с (the same messages as the page scripts' fmtDuration)."""
    if seconds is None:
        return "—"
    total = max(0, round(seconds))
    h, m, s = total // 3600, total % 3600 // 60, total % 60
    if h:
        return _(request, "{h} h {m} min {s} s", h=h, m=f"{m:02d}", s=f"{s:02d}")
    if m:
        return _(request, "{m} min {s} s", m=m, s=f"{s:02d}")
    return _(request, "{s} s", s=s)
