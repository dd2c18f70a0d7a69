"""Server-side values as the page scripts write them: Moscow time, 24-hour, dd.mm.yyyy in Russian."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pbxbridge.config import KpiConfig
from pbxbridge.web.context import CONTEXT, USER, WebContext
from pbxbridge.web.formats import fmt_date, fmt_duration, fmt_time, fmt_time_of_day
from pbxbridge.web.sessions import SessionSigner
from tests.fixtures_web import web_config


def _request(accept_language: str, timezone: str = "Europe/Moscow") -> web.Request:
    app = web.Application()
    config = dataclasses.replace(web_config("sqlite://", Path(".")), kpi=KpiConfig(timezone=timezone))
    app[CONTEXT] = WebContext(config=config, sessions=None, signer=SessionSigner("k"))  # type: ignore[arg-type]
    request = make_mocked_request("GET", "/", headers={"Accept-Language": accept_language}, app=app)
    request[USER] = None
    return request


MOMENT = datetime(2026, 12, 7, 11, 5, 9, tzinfo=UTC)
LATE = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)  # already the 8th in Moscow


def test_russian_values() -> None:
    ru = _request("ru-RU")
    assert fmt_time(ru, MOMENT) == "07.12.2026 14:05:09"
    # Stored naive values are UTC.
    assert fmt_time(ru, MOMENT.replace(tzinfo=None)) == "07.12.2026 14:05:09"
    assert (fmt_date(ru, LATE), fmt_date(ru, date(2026, 12, 7))) == ("08.12.2026", "07.12.2026")
    assert fmt_time_of_day(ru, MOMENT) == "14:05"
    assert [fmt_duration(ru, s) for s in (45, 125, 3725, None)] == ["45 с", "2 мин 05 с", "1 ч 02 мин 05 с", "—"]


def test_english_values_in_the_configured_zone() -> None:
    en = _request("en-US")
    assert fmt_time(en, MOMENT) == "7 Dec 2026, 14:05:09"
    assert fmt_date(en, LATE) == "8 Dec 2026"
    assert fmt_duration(en, 125) == "2 min 05 s"
    # Another department's zone: Yekaterinburg is UTC+5.
    assert fmt_time(_request("en-US", "Asia/Yekaterinburg"), MOMENT) == "7 Dec 2026, 16:05:09"
