"""`pbxbridge agi-server` (overflow routing on its own) and `pbxbridge routing show|set`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.listener import AmiListener
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade_async
from pbxbridge.routing.agi import FastAgiServer
from pbxbridge.routing.daemon import default_rules
from pbxbridge.routing.live import LineFeed
from pbxbridge.routing.overflow import OverflowRouter
from pbxbridge.routing.rules import RulesError, get_rules, set_rules

log = logging.getLogger("pbxbridge")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agi-server`` and ``routing show|set``."""
    p = subparsers.add_parser(
        "agi-server", help="serve overflow routing over FastAGI without the rest of the daemon"
    )
    add_common_options(p)
    p.add_argument("--host", default=None, help="address to listen on (default: routing.agi_host)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: routing.agi_port)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(func=cmd_agi_server)

    routing = subparsers.add_parser("routing", help="show or change the overflow routing rules (JSON)")
    actions = routing.add_subparsers(dest="routing_command", required=True)
    show = actions.add_parser("show", help="print the rules in force as JSON")
    add_common_options(show)
    show.set_defaults(func=cmd_show)
    change = actions.add_parser(
        "set", help="change rules: a JSON object with only the keys to change (groups and hours replace all)"
    )
    add_common_options(change)
    source = change.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="FILE", help="read the JSON from FILE ('-': stdin)")
    source.add_argument("--json", dest="json_text", metavar="JSON", help="the JSON itself")
    change.set_defaults(func=cmd_set)


def cmd_show(args: argparse.Namespace) -> int:
    """Print the stored rules (or the defaults from the settings when none were saved)."""
    config = config_or_exit(args)

    async def show() -> dict[str, Any]:
        await upgrade_async(config.database.url)
        engine = make_engine(config.database.url)
        try:
            return (await get_rules(session_factory(engine), default_rules(config))).to_json()
        finally:
            await engine.dispose()

    print(json.dumps(asyncio.run(show()), ensure_ascii=False, indent=2))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """Validate and store rules; prints the rules now in force, or every problem found."""
    config = config_or_exit(args)
    try:
        if args.json_text is not None:
            text = args.json_text
        elif str(args.file) == "-":
            text = sys.stdin.read()
        else:
            text = args.file.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read the rules: {exc}", file=sys.stderr)
        return 2
    if not isinstance(data, dict):
        print("the rules must be a JSON object", file=sys.stderr)
        return 2

    async def store() -> dict[str, Any]:
        await upgrade_async(config.database.url)
        engine = make_engine(config.database.url)
        try:
            return (await set_rules(session_factory(engine), data, default_rules(config))).to_json()
        finally:
            await engine.dispose()

    try:
        rules = asyncio.run(store())
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(json.dumps(rules, ensure_ascii=False, indent=2))
    return 0


def cmd_agi_server(args: argparse.Namespace) -> int:
    """Serve ``agi://host:port/route`` until SIGTERM or SIGINT."""
    config = config_or_exit(args)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_agi_server(config, args.host, args.port))
    return 0


async def run_agi_server(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    stop: asyncio.Event | None = None,
    feed: LineFeed | None = None,
    started: asyncio.Future[int] | None = None,
) -> None:
    """FastAGI plus an AMI session for the first PBX's line states; returns when ``stop`` is set.

    ``started`` gets the bound AGI port once listening.
    """
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    await upgrade_async(config.database.url)
    engine = make_engine(config.database.url)
    pbx = config.pbx[0]
    feed = feed or LineFeed()
    listener: AmiListener | None = None

    def on_event(frame: Frame, _received_at: float) -> None:
        feed.feed(frame, listener.send_action if listener is not None else None)

    listener = AmiListener(pbx.host, pbx.port, pbx.username, pbx.secret, on_event, name=pbx.name)
    router = OverflowRouter(
        session_factory(engine), feed.lines, default_rules(config), region=config.phone.default_region
    )
    server = FastAgiServer(
        {"route": router.handle},
        host if host is not None else config.routing.agi_host,
        port if port is not None else config.routing.agi_port,
    )
    try:
        await server.start()
        await listener.start()
        if started is not None:
            started.set_result(server.port)
        log.info("overflow routing on agi://%s:%d/route; line states from AMI %s:%d",
                 server.host, server.port, pbx.host, pbx.port)
        await stop.wait()
    finally:
        await listener.stop()
        await feed.stop()
        await server.stop()
        await engine.dispose()
