"""Keeping the garbage collector's pauses short in a long-running daemon."""

from __future__ import annotations

import gc

# Full collections wait for this many collections of the middle generation
# (Python's default: 10). What lives past start-up is mostly calls in progress
# and their rows, freed by reference counting; a full walk of them paused the
# event loop 45-85 ms every few seconds under a thousand calls.
FULL_COLLECTION_AFTER = 100


def settle_after_start() -> None:
    """Move everything built while starting (modules, ORM mappers, settings) out of the collector's sight.

    A full collection walks every tracked object; after start-up most of them
    live as long as the process, and walking them paused the event loop for
    over 100 ms in the middle of call traffic. Frozen objects are never
    collected, so this is done once, in the process that runs the daemon.
    """
    gc.collect()
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
