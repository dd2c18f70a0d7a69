"""The journal's saved filters: each user's own, beside the presets every user has."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pbxbridge.calls.tables import Call
from pbxbridge.db.base import Base, table_of
from pbxbridge.db.types import UTCDateTime
from pbxbridge.web.i18n import N_

# A name a person types in the "Save filter" box, and a query string the journal's address holds.
MAX_NAME_CHARS = 80
MAX_QUERY_CHARS = 2000
# Enough for every preset a department keeps; more is a script, not a person.
MAX_PER_USER = 50
# What a saved filter keeps: the journal's filters and its order, never the page it was on.
KEPT = frozenset(
    {"q", "from", "to", "manager", "client", "direction", "status", "answered", "min_duration", "max_duration",
     "has_recording", "has_transcript", "kpi", "sort", "side", "tag", "score_below", "score_at_least", "reviewed",
     "checklist", "failed_item", "stop_said"}
)
# A call as long as this is a long call (the "Long calls" preset), in seconds of wait and talk.
LONG_CALL_S = 600


class SavedFilter(Base):
    """A user's named journal filter: the query string of the journal's address."""

    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_filters_user_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    query: Mapped[str] = mapped_column(String(MAX_QUERY_CHARS))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Sorting a busy journal by talk time reads the calls in that order instead of sorting them all.
Index("ix_calls_talk_s", table_of(Call).c.talk_s)


def kept_query(query: str) -> str:
    """The filters of a journal query string worth keeping, in a stable order (no page, no blanks)."""
    pairs = [(k, v.strip()) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=False) if k in KEPT]
    return urlencode(sorted((k, v) for k, v in pairs if v))


def presets(today: str) -> list[dict[str, str]]:
    """The presets every user has (``today``: the department's local date, YYYY-MM-DD); names untranslated.

    Today's missed are the calls the "missed" figure counts (the KPIs' definition, not a status).
    """
    return [
        {"id": "todays_missed", "name": N_("Today's missed"),
         "query": kept_query(urlencode({"kpi": "missed", "from": today, "to": today}))},
        {"id": "long_calls", "name": N_("Long calls"),
         "query": kept_query(urlencode({"min_duration": LONG_CALL_S, "sort": "-duration"}))},
        {"id": "outbound_unanswered", "name": N_("Outbound without answer"),
         "query": kept_query(urlencode({"direction": "outbound", "answered": "false"}))},
    ]
