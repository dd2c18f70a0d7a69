"""sd_notify(3) without libsystemd: READY, STOPPING, STATUS and WATCHDOG pings.

``Type=notify`` units are ready only when the process says so; pbxbridge says
so once its database is migrated and every PBX's AMI session is logged in.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``KEY=value`` lines to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # Abstract namespace socket.
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall("\n".join(states).encode("utf-8"))
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


def watchdog_ping() -> bool:
    return notify("WATCHDOG=1")
