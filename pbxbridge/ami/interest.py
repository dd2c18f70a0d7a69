"""Which AMI events pbxbridge reads: those it does not are dropped before they are decoded.

Asterisk sends far more than a call journal needs. On a FreePBX stream most
events are ``VarSet`` (every dialplan ``Set()``: a few variables matter, the
macro bookkeeping does not), then ``CEL`` and ``Cdr`` (the same call again in
other records): about half of the frames of the shared traces. Splitting each
into a dict and handing it to the tracker, the line states, the wallboard and
the KPI clock costs the daemon most of its CPU at a busy hour, and that time is
taken from the journal's writes. The decoder looks at a frame's first line
(Asterisk always puts ``Event:`` first) and skips what nobody reads; a
``VarSet`` is read when it sets a variable some part asked for.

Asterisk can also be told not to send some of them (``eventfilter`` lines of
the AMI user, docs/FREEPBX.md); this filter keeps the daemon lean either way.
"""

from __future__ import annotations

# Sent in bulk, read by no part of pbxbridge (lowercase, as compared).
IGNORED_EVENTS = frozenset({"varset", "cel", "cdr", "rtcpsent", "rtcpreceived", "dtmfbegin", "dtmfend"})
_EVENT = b"Event: "
_VARIABLE = b"\nVariable: "
_ACTION_ID = b"\nActionID: "


class EventInterest:
    """The events nobody reads, and the variables whose ``VarSet`` somebody does.

    Parts of the daemon ask for more before the AMI connections start
    (``want_event``, ``want_variable``); an event one part wants is handed to
    every event subscriber, as before.
    """

    def __init__(self, ignored: frozenset[str] = IGNORED_EVENTS, variables: frozenset[str] = frozenset()) -> None:
        self._ignored = {name.lower().encode() for name in ignored}
        self._variables = {name.encode() for name in variables}

    def want_event(self, name: str) -> None:
        """Hand on every event of this kind (``VarSet``: every variable)."""
        self._ignored.discard(name.lower().encode())

    def want_variable(self, name: str) -> None:
        """Hand on the ``VarSet`` events that set this variable (names are case-sensitive, as in the dialplan)."""
        self._variables.add(name.encode())

    @property
    def ignored_events(self) -> frozenset[str]:
        return frozenset(name.decode() for name in self._ignored)

    def drops(self, block: bytes | bytearray) -> bool:
        """Whether a frame's raw text (without its blank line) is an event nobody reads."""
        if not block.startswith(_EVENT):
            return False
        end = block.find(b"\n")
        name = bytes(block[7:end] if end >= 0 else block[7:]).strip().lower()
        if name not in self._ignored:
            return False
        if _ACTION_ID in block:
            # Part of an action's answer: whoever asked reads it.
            return False
        if name == b"varset":
            start = block.find(_VARIABLE)
            if start >= 0:
                start += len(_VARIABLE)
                stop = block.find(b"\n", start)
                variable = bytes(block[start:stop] if stop >= 0 else block[start:]).rstrip(b"\r")
                if variable in self._variables:
                    return False
        return True
