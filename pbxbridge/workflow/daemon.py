"""The workflow in the daemon: cards get their manager from the calls as the journal writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pbxbridge.clients.assign import NO_ASSIGNMENT
from pbxbridge.workflow.assignment import AssignFromCalls

if TYPE_CHECKING:
    from pbxbridge.hub import Hub


def attach(hub: Hub) -> AssignFromCalls | None:
    """Hook the assignment into the journal's transaction (not when ``assign_manager`` is "none").

    The missed-calls worklist needs nothing from the daemon: it is read off the journal.
    """
    mode = hub.config.workflow.assign_manager
    if mode == NO_ASSIGNMENT:
        return None
    assigner = AssignFromCalls(mode)
    # Inside the journal's transaction: a card is never seen with its first call and no manager.
    hub.after_write(assigner.after_write)
    return assigner
