"""Daemon subcommands: ``run`` (follow the PBXes' calls) and ``simulate`` (serve captured AMI)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.demo.pbx import demo_wanted, start_demo_pbx
from pbxbridge.service.heap import settle_after_start
from pbxbridge.service.logging import make_handler

log = logging.getLogger("pbxbridge")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``simulate`` to the pbxbridge command line."""
    p = subparsers.add_parser("run", help="run the daemon: every PBX's calls into the journal, until stopped")
    add_common_options(p)
    p.set_defaults(func=cmd_run)

    # Another module may already offer a demo command; argparse refuses a second.
    if "demo" not in subparsers.choices:
        p = subparsers.add_parser("demo", help="run the daemon against the bundled calls, replayed as a live PBX")
        add_common_options(p)
        p.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = as the calls happened)")
        p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser("simulate", help="serve captured AMI streams over TCP as an Asterisk would")
    p.add_argument("traces", nargs="+", type=Path, metavar="TRACE.ami")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5038, help="TCP port (default 5038; 0 picks a free one)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed: 1 = as captured, 10 = ten times faster, 0 = as fast as possible")
    p.add_argument("--loop", action="store_true", help="start over after the last trace, forever")
    p.add_argument("--fresh-ids", action="store_true",
                   help="give each pass new unique ids and linkedids, so repeats are new calls")
    p.add_argument("--retime", action="store_true", help="stamp events with the current time")
    p.add_argument("--no-hold", action="store_true",
                   help="play on while no client listens, as a real PBX would (default: wait for one)")
    p.add_argument("--username", default=None, help="AMI user clients must log in as (default: any)")
    p.add_argument("--secret", default=None, help="its secret")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(func=cmd_simulate)


def cmd_run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    config = config_or_exit(args)
    setup_logging(config.log.level, config.log.format)
    return asyncio.run(run_daemon(config))


def cmd_demo(args: argparse.Namespace) -> int:
    """`run` with the demo PBX, whatever PBX the settings name."""
    config = config_or_exit(args)
    config = dataclasses.replace(config, demo=dataclasses.replace(config.demo, mode="on"))
    setup_logging(config.log.level, config.log.format)
    return asyncio.run(run_daemon(config, demo_speed=args.speed))


async def run_daemon(config: Config, demo_speed: float = 1.0) -> int:
    """Start the daemon (and the demo PBX when no PBX is configured) and wait for a signal."""
    stop = _stop_on_signals()
    simulator: AmiSimulator | None = None
    if demo_wanted(config):
        try:
            simulator, config = await start_demo_pbx(config, speed=demo_speed)
        except FileNotFoundError as exc:
            log.error("demo mode needs the bundled calls: %s; configure a [[pbx]] instead", exc)
            return 1
        log.info("demo mode: no PBX configured; replaying the bundled calls on port %d", simulator.port)
    daemon = Daemon(config)
    attach_domains(daemon)
    try:
        await daemon.start()
        settle_after_start()
        if simulator is not None:
            await _greet_demo_user(daemon, config)
        await stop.wait()
        log.info("stopping")
    finally:
        await daemon.stop()
        if simulator is not None:
            await simulator.stop()
    return 0


async def _greet_demo_user(daemon: Daemon, config: Config) -> None:
    """Give the demo its sign-ins and say where to open it."""
    from pbxbridge.demo.accounts import demo_banner, ensure_demo_accounts

    if daemon.session_factory is None:
        return
    accounts = await ensure_demo_accounts(daemon.session_factory)
    print(demo_banner(f"http://{config.web.host}:{config.web.port}/", accounts), flush=True)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve the traces until SIGTERM or SIGINT."""
    missing = [str(p) for p in args.traces if not p.is_file()]
    if missing:
        for path in missing:
            print(f"{path}: no such file", file=sys.stderr)
        return 2
    if args.speed < 0:
        print("--speed must be 0 or more", file=sys.stderr)
        return 2
    setup_logging(args.log_level, "text")
    asyncio.run(_simulate(args))
    return 0


async def _simulate(args: argparse.Namespace) -> None:
    stop = _stop_on_signals()
    simulator = AmiSimulator(
        args.traces, speed=args.speed, host=args.host, port=args.port,
        username=args.username, secret=args.secret,
        loop=args.loop, fresh_ids=args.fresh_ids, retime=args.retime, hold_when_idle=not args.no_hold,
    )
    await simulator.start()
    # Scripts starting the simulator read the port from this line.
    print(f"listening on {args.host}:{simulator.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def setup_logging(level: str, fmt: str) -> None:
    """Log to stderr as JSON lines (for journald/Loki) or as text."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level)
