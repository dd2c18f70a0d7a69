"""Reading the figures back: rows per manager-day (and department-day) for JSON, CSV and the web."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import Manager
from pbxbridge.kpi.calendar import iso_local
from pbxbridge.kpi.definitions import DEPARTMENT, FIGURE_KIND, FIGURE_NAMES, KpiSettings
from pbxbridge.kpi.tables import ManagerDayRow, ManagerHourRow


async def read_figures(
    session: AsyncSession,
    day_from: date,
    day_to: date,
    settings: KpiSettings | None = None,
    manager: str | None = None,
    hourly: bool = False,
) -> list[dict[str, Any]]:
    """Figures from day_from to day_to inclusive: each day's managers by extension, then the department.

    ``manager`` None for the department's row; a manager filter leaves the department out.
    """
    settings = settings or KpiSettings()
    table = (ManagerHourRow if hourly else ManagerDayRow).__table__
    query = select(table).where(table.c.day >= day_from, table.c.day <= day_to)
    if manager is not None:
        query = query.where(table.c.manager == manager)
    rows = (await session.execute(query)).mappings().all()
    names = {ext: name for ext, name in await session.execute(select(Manager.extension, Manager.name))}
    out: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: _order(r, hourly)):
        item: dict[str, Any] = {"date": row["day"].isoformat()}
        if hourly:
            item["hour"] = row["hour"]
        is_department = row["manager"] == DEPARTMENT
        item["manager"] = None if is_department else row["manager"]
        item["manager_name"] = None if is_department else names.get(row["manager"])
        for name in FIGURE_NAMES:
            value = row[name]
            item[name] = iso_local(value, settings.zone) if FIGURE_KIND[name] == "time" else value
        out.append(item)
    return out


def _order(row: Any, hourly: bool) -> tuple[Any, ...]:
    # The department's line closes each day (or hour), after its managers.
    hour = row["hour"] if hourly else 0
    return (row["day"], hour, row["manager"] == DEPARTMENT, row["manager"])


def as_json_lines(rows: Sequence[dict[str, Any]]) -> str:
    """One JSON object per line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def as_csv(rows: Sequence[dict[str, Any]], hourly: bool = False) -> str:
    """CSV with a header line; empty cells for figures that do not apply."""
    fields = ["date", *(["hour"] if hourly else []), "manager", "manager_name", *FIGURE_NAMES]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()
