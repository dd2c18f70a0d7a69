"""Routing test fixtures: an AGI client that talks exactly as Asterisk does, line states from traces."""

from __future__ import annotations

import asyncio
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from pbxbridge.ami.frames import Frame, read_trace
from pbxbridge.routing.line_states import LineStates


@dataclass(slots=True)
class AgiOutcome:
    """What the script did to the channel: its commands and the variables it set."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    verbose: list[str] = field(default_factory=list)


async def asterisk_agi_call(
    port: int,
    script: str,
    caller: str,
    args: list[str] | None = None,
    uniqueid: str = "1795724330.0",
) -> AgiOutcome:
    """Play Asterisk's side of ``AGI(agi://127.0.0.1:<port>/<script>,args…)`` from from-trunk.

    The environment lines, their order and the replies are Asterisk 22's
    (res_agi.c ``setup_env`` and ``agi_handle_command``).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = [
        ("agi_network", "yes"),
        ("agi_network_script", script),
        ("agi_request", f"agi://127.0.0.1:{port}/{script}"),
        ("agi_channel", "PJSIP/trunk-00000000"),
        ("agi_language", "ru"),
        ("agi_type", "PJSIP"),
        ("agi_uniqueid", uniqueid),
        ("agi_version", "22.0.0"),
        ("agi_callerid", caller),
        ("agi_calleridname", caller),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "74951234567"),
        ("agi_rdnis", "unknown"),
        ("agi_context", "pbxbridge-route"),
        ("agi_extension", "s"),
        ("agi_priority", "3"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140245360813632"),
    ]
    for i, arg in enumerate(args or [], start=1):
        env.append((f"agi_arg_{i}", arg))
    writer.write("".join(f"{k}: {v}\n" for k, v in env).encode() + b"\n")
    await writer.drain()
    outcome = AgiOutcome()
    try:
        while True:
            raw = await asyncio.wait_for(reader.readline(), 10)
            if not raw:
                break
            line = raw.decode().rstrip("\n")
            outcome.commands.append(line)
            words = shlex.split(line)
            verb = " ".join(words[:2]).upper()
            if verb == "SET VARIABLE" and len(words) == 4:
                outcome.variables[words[2]] = words[3]
                writer.write(b"200 result=1\n")
            elif words and words[0].upper() == "VERBOSE":
                outcome.verbose.append(words[1] if len(words) > 1 else "")
                writer.write(b"200 result=1\n")
            else:
                writer.write(b"510 Invalid or unknown command\n")
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    return outcome


def trace_events(shared_dir: Path, scenario: str) -> list[Frame]:
    """The events of one captured stream."""
    _, frames = read_trace(shared_dir / f"{scenario}.ami")
    return [f for f in frames if "Event" in f]


def lines_until(events: list[Frame], stop: str, nth: int = 1, extra: str | None = None) -> tuple[LineStates, float]:
    """Line states after the ``nth`` event named ``stop`` (or whose text has ``extra``); and its time."""
    lines = LineStates()
    seen = 0
    ts = 0.0
    for event in events:
        lines.feed(event)
        ts = float(event.get("Timestamp", ts))
        if event.get("Event") == stop and (extra is None or re.search(extra, " ".join(event.values()))):
            seen += 1
            if seen == nth:
                return lines, ts
    raise AssertionError(f"no {nth}th {stop} event")
