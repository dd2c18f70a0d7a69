"""Client cards and their phone numbers; managers, whom cards and calls point at."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class Manager(Base):
    """A sales manager, known by the extension of their handset."""

    __tablename__ = "managers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    extension: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))


class Client(Base):
    """A client's card; a number nobody has seen before starts one as a lead."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    is_lead: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    responsible_manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)

    phones: Mapped[list[ClientPhone]] = relationship(back_populates="client", lazy="selectin")


class ClientPhone(Base):
    """One of a client's numbers, in E.164 with '+'; a number belongs to one card."""

    __tablename__ = "client_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)

    client: Mapped[Client] = relationship(back_populates="phones")
