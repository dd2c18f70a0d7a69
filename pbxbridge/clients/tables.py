"""Client cards and their phone numbers; managers, whom cards and calls point at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, event, text
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
    # Search scans the named cards' folded names (LIKE '%…%' reads them all):
    # this index holds only those, a fraction of the table's size.
    __table_args__ = (
        Index(
            "ix_clients_name_folded", "name_folded", "id",
            sqlite_where=text("name_folded IS NOT NULL"), postgresql_where=text("name_folded IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # The name as searched: see fold_name. Kept by setting ``name`` (the listener below);
    # a name written around the application is folded by a trigger (migration 0007).
    name_folded: Mapped[str | None] = mapped_column(String(200))
    is_lead: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    responsible_manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    # Who chose the responsible manager: AUTO (from the calls, workflow.assign_manager) or
    # MANUAL (a person); None while nobody has. A manual choice is never overridden by calls.
    manager_set_by: Mapped[str | None] = mapped_column(String(8))
    # AUTO: the start of the call that decided it (calls may be written out of order);
    # MANUAL: when the person chose.
    manager_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    phones: Mapped[list[ClientPhone]] = relationship(back_populates="client", lazy="selectin")


def fold_name(name: str) -> str:
    """A name as people type it into search: any case, «ё» as «е».

    Folded in Python because SQLite's lower() and LIKE fold ASCII letters only,
    so «иванов» would not find «Иванов» there.
    """
    return name.casefold().replace("ё", "е")


@event.listens_for(Client.name, "set", propagate=True)
def _fold_on_set(target: Client, value: str | None, _old: Any, _initiator: Any) -> None:
    target.name_folded = fold_name(value) if value else None


# Values of Client.manager_set_by.
AUTO = "auto"
MANUAL = "manual"


@event.listens_for(Client.responsible_manager_id, "set", propagate=True)
def _manual_on_set(target: Client, _value: int | None, _old: Any, _initiator: Any) -> None:
    # Any code that sets the manager on a card (the card's form, a script) is a person's choice;
    # the assignment from calls sets manager_set_by back to AUTO right after (clients.assign).
    target.manager_set_by = MANUAL
    target.manager_set_at = datetime.now(UTC)


class ClientPhone(Base):
    """One of a client's numbers, in E.164 with '+'; a number belongs to one card."""

    __tablename__ = "client_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)

    client: Mapped[Client] = relationship(back_populates="phones")


class ClientNote(Base):
    """One note on a card, with who wrote it and when: notes are added, never overwritten."""

    __tablename__ = "client_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    # The username, kept as text (the note outlives a deleted user); None for the card's single
    # notes field as it stood before notes had authors.
    author: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
