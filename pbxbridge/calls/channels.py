"""What a channel name says about the party behind it.

Asterisk names channels ``<tech>/<resource>-<seq>`` (``PJSIP/201-00000004``,
``PJSIP/trunk-00000005``) or, for Local channels,
``Local/<exten>@<context>-<seq>;<1|2>``.  FreePBX queue members, ring groups
and follow-me are Local channels, so a handset can hide behind either form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LOCAL = re.compile(r"^Local/(?P<exten>[^@]*)@(?P<context>.+)-(?P<seq>[0-9a-f]+);(?P<side>[12])$")
_DEVICE = re.compile(r"^(?P<tech>[A-Za-z0-9_]+)/(?P<resource>.+)-(?P<seq>[0-9a-f]+)$")


@dataclass(frozen=True, slots=True)
class ChannelName:
    """A parsed channel name."""

    raw: str
    tech: str
    # Device resource (``201``, ``trunk``) or a Local channel's extension.
    resource: str
    local_context: str | None = None
    # ``Local/...;1`` and ``;2`` share this base: they are two ends of one pipe.
    local_base: str | None = None
    local_side: int | None = None

    @property
    def is_local(self) -> bool:
        return self.local_base is not None


def parse_channel(name: str) -> ChannelName:
    """Split a channel name into technology, resource and Local-pipe parts."""
    m = _LOCAL.match(name)
    if m:
        base = name.rsplit(";", 1)[0]
        return ChannelName(
            raw=name,
            tech="Local",
            resource=m["exten"],
            local_context=m["context"],
            local_base=base,
            local_side=int(m["side"]),
        )
    m = _DEVICE.match(name)
    if m:
        return ChannelName(raw=name, tech=m["tech"], resource=m["resource"])
    tech, _, rest = name.partition("/")
    return ChannelName(raw=name, tech=tech, resource=rest)


def local_partner(name: str) -> str | None:
    """The other end of a Local channel pipe (``;1`` <-> ``;2``)."""
    if name.endswith(";1"):
        return name[:-1] + "2"
    if name.endswith(";2"):
        return name[:-1] + "1"
    return None
