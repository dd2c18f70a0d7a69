"""Long lists of keys or rows put to the database a slice at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# Keys per "IN (…)", rows per multi-row statement: well under every database's
# bound-parameter limit (SQLite 32,766, PostgreSQL 65,535), a few columns a row included.
IN_CHUNK = 500


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
