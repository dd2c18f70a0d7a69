"""Tables of the KPI store: a fact row per call and per lead, figures per manager per day and hour."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

# Calls and cards must exist before facts can point at them.
from pbxbridge.calls.tables import Call  # noqa: F401
from pbxbridge.clients.tables import Client
from pbxbridge.db.base import Base, table_of
from pbxbridge.kpi.definitions import FIGURES


class CallFactRow(Base):
    """What the KPIs need of one call; times are Unix seconds so percentiles recompute exactly."""

    __tablename__ = "kpi_call_facts"
    __table_args__ = (
        Index("ix_kpi_call_facts_day", "day"),
        Index("ix_kpi_call_facts_client_key", "client_key"),
        Index("ix_kpi_call_facts_client_id", "client_id"),
        # The clock (latest end) and the missed calls whose callback window is open:
        # each written call asks for both, so neither may read the whole table.
        Index("ix_kpi_call_facts_ended_at", "ended_at"),
        Index("ix_kpi_call_facts_open_windows", "lost", "direction", "status", "ended_at"),
    )

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float)
    wait_s: Mapped[float] = mapped_column(Float)
    talk_s: Mapped[float] = mapped_column(Float)
    client_key: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(Integer)
    manager: Mapped[str | None] = mapped_column(String(32))
    callee: Mapped[str | None] = mapped_column(String(64))
    rang: Mapped[list[str]] = mapped_column(JSON)
    transferred_to: Mapped[list[str]] = mapped_column(JSON)
    queues: Mapped[list[str]] = mapped_column(JSON)
    callback_call_id: Mapped[int | None] = mapped_column(Integer)
    callback_by: Mapped[str | None] = mapped_column(String(32))
    callback_s: Mapped[float | None] = mapped_column(Float)
    # NULL while the callback window is still open.
    lost: Mapped[bool | None] = mapped_column(Boolean)
    # Speech analytics (pbxbridge.kpi.speech): NULL until the call is checked against a checklist.
    speech_items: Mapped[int | None] = mapped_column(Integer)
    speech_items_passed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stop_phrase: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # NULL unless a two-channel recording measured each side's talk.
    manager_talk_s: Mapped[float | None] = mapped_column(Float)
    client_talk_s: Mapped[float | None] = mapped_column(Float)


# A business day's lead cards are found by when they were made (see DayFigures);
# the index belongs to the KPI store's revisions, so it is declared here.
Index("ix_clients_created_at", table_of(Client).c.created_at)


class LeadRow(Base):
    """A new lead: when it arrived and who first called it, and when."""

    __tablename__ = "kpi_leads"
    __table_args__ = (Index("ix_kpi_leads_day", "day"),)

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    arrived_at: Mapped[float] = mapped_column(Float)
    first_attempt_at: Mapped[float | None] = mapped_column(Float)
    first_attempt_by: Mapped[str | None] = mapped_column(String(32))
    first_answered_at: Mapped[float | None] = mapped_column(Float)
    first_answered_by: Mapped[str | None] = mapped_column(String(32))
    reached: Mapped[bool] = mapped_column(Boolean)


def _figure_type(kind: str) -> Any:
    return Integer if kind == "count" else Float


def _figures_table(name: str, *keys: Column[Any]) -> Table:
    """A table of figures: key columns, then one nullable column per figure in FIGURES."""
    key_names = [k.name for k in keys]
    return Table(
        name,
        Base.metadata,
        Column("id", Integer, primary_key=True),
        *keys,
        *(Column(f.name, _figure_type(f.kind), nullable=True) for f in FIGURES),
        UniqueConstraint(*key_names, name=f"uq_{name}_{'_'.join(key_names)}"),
    )


class ManagerDayRow(Base):
    """A manager's figures for one business day; manager '' holds the department's totals."""

    __table__ = _figures_table(
        "kpi_manager_day",
        Column("day", Date, nullable=False),
        Column("manager", String(32), nullable=False),
    )


class ManagerHourRow(Base):
    """A manager's figures for one local hour of a business day; manager '' for the department."""

    __table__ = _figures_table(
        "kpi_manager_hour",
        Column("day", Date, nullable=False),
        Column("hour", Integer, nullable=False),
        Column("manager", String(32), nullable=False),
    )


class KpiTargetRow(Base):
    """A target the head of sales set for one figure: for the department, or for each manager."""

    __tablename__ = "kpi_targets"

    kpi: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "department" or "manager" (the same target for every manager).
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Counts are per day (scaled to the period shown); shares 0..1; times in seconds.
    value: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[float] = mapped_column(Float)
