"""What a checklist is: which calls it applies to and the items a manager's speech is checked against.

The head of sales writes it as JSON::

    {"name": "Входящий звонок",
     "applies": {"direction": "inbound", "queue": ["sales"], "min_talk_s": 20},
     "items": [{"title": "Назвал компанию", "phrases": ["компания ромашка"], "side": "manager",
                "within_s": 10, "must": true},
               {"title": "Не грубил", "phrases": ["не мои проблемы"], "must": false}]}

``side`` is manager, client or any (default any); ``within_s`` counts from the answer, ``last_s``
back from the end; ``must`` defaults to true (false: a stop phrase, which must not be said).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pbxbridge.transcription.lemmas import words_of

SIDES = ("manager", "client", "any")
DIRECTIONS = ("inbound", "outbound", "internal")
MAX_NAME_CHARS = 200
MAX_ITEMS = 100
MAX_PHRASES = 50
# A phrase is a few words said together; longer is a pasted script, not something to find.
MAX_PHRASE_WORDS = 8
_ITEM_KEYS = {"title", "phrases", "side", "within_s", "last_s", "must"}
_APPLIES_KEYS = {"direction", "queue", "min_talk_s"}


class ChecklistError(ValueError):
    """A checklist that cannot be stored, with every problem found, each naming where it is."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Applies:
    """Which calls a checklist is for; an empty tuple or None means any."""

    directions: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    min_talk_s: float = 0.0

    def covers(self, direction: str, queues: list[str] | None, talk_s: float) -> bool:
        """Whether a call with this direction, these queues and this talk time is checked."""
        if self.directions and direction not in self.directions:
            return False
        if self.queues and not set(self.queues).intersection(queues or ()):
            return False
        return talk_s >= self.min_talk_s


@dataclass(frozen=True, slots=True)
class Item:
    """One thing the script asks for (or forbids)."""

    title: str
    phrases: tuple[str, ...]
    side: str = "any"
    within_s: float | None = None
    last_s: float | None = None
    must: bool = True


@dataclass(frozen=True, slots=True)
class Checklist:
    name: str
    items: tuple[Item, ...]
    applies: Applies = field(default_factory=Applies)

    def as_json(self) -> dict[str, Any]:
        """The definition as the head wrote it (normalised), to store and to print."""
        applies: dict[str, Any] = {}
        if self.applies.directions:
            applies["direction"] = list(self.applies.directions)
        if self.applies.queues:
            applies["queue"] = list(self.applies.queues)
        if self.applies.min_talk_s:
            applies["min_talk_s"] = self.applies.min_talk_s
        items = []
        for item in self.items:
            entry: dict[str, Any] = {"title": item.title, "phrases": list(item.phrases), "side": item.side}
            if item.within_s is not None:
                entry["within_s"] = item.within_s
            if item.last_s is not None:
                entry["last_s"] = item.last_s
            entry["must"] = item.must
            items.append(entry)
        return {"name": self.name, "applies": applies, "items": items}


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where}: a text or a list of texts")
        return ()
    return tuple(v.strip() for v in value)


def _seconds(value: Any, where: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        problems.append(f"{where}: a number of seconds above 0")
        return None
    return float(value)


def _applies(raw: Any, problems: list[str]) -> Applies:
    if raw is None:
        return Applies()
    if not isinstance(raw, dict):
        problems.append("applies: an object with direction, queue, min_talk_s")
        return Applies()
    for key in sorted(set(raw) - _APPLIES_KEYS):
        problems.append(f"applies.{key}: unknown (known: {', '.join(sorted(_APPLIES_KEYS))})")
    directions = _strings(raw.get("direction"), "applies.direction", problems)
    for direction in directions:
        if direction not in DIRECTIONS:
            problems.append(f"applies.direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    min_talk = raw.get("min_talk_s", 0)
    if isinstance(min_talk, bool) or not isinstance(min_talk, int | float) or not math.isfinite(min_talk) or min_talk < 0:
        problems.append("applies.min_talk_s: a number of seconds, 0 or more")
        min_talk = 0
    return Applies(directions, _strings(raw.get("queue"), "applies.queue", problems), float(min_talk))


def _item(raw: Any, n: int, problems: list[str]) -> Item | None:
    where = f"items[{n}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: an object with title and phrases")
        return None
    for key in sorted(set(raw) - _ITEM_KEYS):
        problems.append(f"{where}.{key}: unknown (known: {', '.join(sorted(_ITEM_KEYS))})")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(f"{where}.title: a text is needed")
        title = ""
    phrases = _strings(raw.get("phrases"), f"{where}.phrases", problems)
    if not phrases:
        problems.append(f"{where}.phrases: at least one phrase is needed")
    if len(phrases) > MAX_PHRASES:
        problems.append(f"{where}.phrases: at most {MAX_PHRASES}")
    for phrase in phrases:
        count = len(words_of(phrase))
        if count == 0:
            problems.append(f"{where}.phrases: {phrase!r} has no words")
        elif count > MAX_PHRASE_WORDS:
            problems.append(f"{where}.phrases: {phrase!r} has more than {MAX_PHRASE_WORDS} words")
    side = raw.get("side", "any")
    if side not in SIDES:
        problems.append(f"{where}.side: {side!r} is not one of {', '.join(SIDES)}")
    within = _seconds(raw.get("within_s"), f"{where}.within_s", problems)
    last = _seconds(raw.get("last_s"), f"{where}.last_s", problems)
    if within is not None and last is not None:
        problems.append(f"{where}: within_s (from the answer) or last_s (before the end), not both")
    must = raw.get("must", True)
    if not isinstance(must, bool):
        problems.append(f"{where}.must: true (must be said) or false (must not be said)")
        must = True
    return Item(title.strip(), phrases, side if side in SIDES else "any", within, last, must)


def parse_checklist(raw: Any) -> Checklist:
    """A checklist from its JSON; ChecklistError lists every problem, so one edit fixes them all."""
    if not isinstance(raw, dict):
        raise ChecklistError(["a checklist is an object with name, applies and items"])
    problems: list[str] = []
    for key in sorted(set(raw) - {"name", "applies", "items"}):
        problems.append(f"{key}: unknown (known: applies, items, name)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: a text is needed")
        name = ""
    elif len(name.strip()) > MAX_NAME_CHARS:
        problems.append(f"name: at most {MAX_NAME_CHARS} characters")
    applies = _applies(raw.get("applies"), problems)
    raw_items = raw.get("items")
    items: list[Item] = []
    if not isinstance(raw_items, list) or not raw_items:
        problems.append("items: a list of at least one item")
    elif len(raw_items) > MAX_ITEMS:
        problems.append(f"items: at most {MAX_ITEMS}")
    else:
        for n, raw_item in enumerate(raw_items):
            item = _item(raw_item, n, problems)
            if item is not None:
                items.append(item)
    if problems:
        raise ChecklistError(problems)
    return Checklist(name.strip(), tuple(items), applies)
