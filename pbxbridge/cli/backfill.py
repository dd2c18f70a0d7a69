"""pbxbridge backfill: a PBX's past calls from its CEL (or CDR) into the journal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time as clock
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbxbridge.app import DOMAIN_MODULES, Daemon, attach_domains
from pbxbridge.backfill.run import Progress, SourceMarks, Writer, run_backfill
from pbxbridge.backfill.source import PAGE_ROWS, CdrSource, SourceError, driver_url
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.replay import replay_pbx
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.engine import WRITE
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.store import KpiRecorder

log = logging.getLogger(__name__)

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RU_DAY = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
# A progress line at most this often when the output is not a terminal (a log, a pipe).
LOG_EVERY_S = 10.0
TRANSCRIPTION_DOMAIN = "pbxbridge.transcription.daemon"
# The domains whose hooks must see each call as the journal writes it: its card's manager
# (workflow: a card is never seen with its first call and no manager, and who gets it depends on
# the calls before) and its CRM delivery, queued as the daemon would (the outbox row goes in the
# call's own transaction; a live daemon or `pbxbridge outbox deliver` sends it; --no-deliver: none,
# as for replay). KPI figures are
# not followed call by call: they are rebuilt once at the end (a call imported today may be the
# callback of one counted a month ago, so every figure is recomputed, not only the touched days).
# The web app, routing, analytics and the gap back-fill serve a live daemon only.
CRM_DOMAIN = "pbxbridge.crm.daemon"
IMPORT_DOMAINS = ("pbxbridge.workflow.daemon", CRM_DOMAIN)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "backfill",
        help="import a PBX's past calls from its CEL/CDR database (resumable; never duplicates a call)",
    )
    add_common_options(p)
    p.add_argument("--pbx", default=None, metavar="NAME", help="the [[pbx]] the calls belong to (default: the first)")
    p.add_argument("--from", dest="day_from", required=True, type=_day_or_moment, metavar="DATE",
                   help="first day (YYYY-MM-DD or DD.MM.YYYY, the PBX's local day) or an ISO time")
    p.add_argument("--to", dest="day_to", required=True, type=_day_or_moment, metavar="DATE",
                   help="last day, included (or an ISO time, excluded)")
    p.add_argument("--cdr-url", default=None, metavar="URL",
                   help="mysql://user:password@host:3306/asteriskcdrdb or postgresql://… (default: the PBX's cdr_url)")
    p.add_argument("--cdr-only", action="store_true", help="the PBX keeps no CEL: rebuild calls from CDR alone")
    p.add_argument("--page-rows", type=int, default=PAGE_ROWS, metavar="N", help="CEL rows read per query")
    p.add_argument("--max-rate", type=float, default=None, metavar="ROWS",
                   help="read at most this many CEL rows a second (spare a busy PBX's database)")
    p.add_argument("--no-deliver", action="store_true",
                   help="queue nothing for the CRM or webhooks (history they must not be sent)")
    p.add_argument("--transcribe", action="store_true",
                   help="queue transcription jobs for the imported calls' recordings (not done by default)")
    p.set_defaults(func=cmd_backfill)


def _day_or_moment(value: str) -> str:
    """argparse type: checked now, read once the PBX's time zone is known."""
    if _RU_DAY.fullmatch(value) or _ISO_DAY.fullmatch(value):
        _parse_day(value)
        return value
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (YYYY-MM-DD or DD.MM.YYYY) or an ISO 8601 time, got {value!r}"
        ) from None
    return value


def _parse_day(value: str) -> date:
    m = _RU_DAY.fullmatch(value)
    try:
        return date(int(m[3]), int(m[2]), int(m[1])) if m else date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"no such day: {value!r}") from None


def bound(value: str, zone: ZoneInfo, end: bool) -> float:
    """A --from/--to value as Unix seconds: a bare day is the PBX's local day, --to takes it whole."""
    if _RU_DAY.fullmatch(value) or _ISO_DAY.fullmatch(value):
        day = _parse_day(value) + (timedelta(days=1) if end else timedelta())
        return datetime.combine(day, time(), zone).timestamp()
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def pbx_zone(config: Config, pbx: PbxConfig) -> ZoneInfo:
    """The zone of the PBX's clock: its cdr_timezone, else the department's."""
    name = pbx.cdr_timezone or config.kpi.timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceError(f"pbx.{pbx.name}.cdr_timezone: not an IANA time zone, got {name!r}") from None


def cmd_backfill(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    if args.pbx is not None and args.pbx not in {p.name for p in config.pbx}:
        print(f"--pbx {args.pbx}: no [[pbx]] of that name in the settings", file=sys.stderr)
        return 2
    pbx = replay_pbx(config, args.pbx)
    url = args.cdr_url or pbx.cdr_url
    if not url:
        print(f"no CDR database for PBX {pbx.name}: set [[pbx]] cdr_url or pass --cdr-url", file=sys.stderr)
        return 2
    try:
        driver_url(url)
        zone = pbx_zone(config, pbx)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 2
    start, end = bound(args.day_from, zone, end=False), bound(args.day_to, zone, end=True)
    if end <= start:
        print("--to is before --from", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        progress = asyncio.run(backfill(config, pbx, url, zone, start, end, args))
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"\nbackfill {pbx.name}: {progress.line()}", file=sys.stderr)
    if progress.kpi_calls is not None:
        print(f"KPIs rebuilt from {progress.kpi_calls} calls", file=sys.stderr)
    print(f"{progress.calls} call(s) read, {progress.new} new in the journal")
    return 0


async def backfill(
    config: Config, pbx: PbxConfig, url: str, zone: ZoneInfo, start: float, end: float, args: argparse.Namespace
) -> Progress:
    """The daemon's pipeline with every domain attached (no AMI, no servers), fed from the CDR database."""
    source = CdrSource(url, zone)
    try:
        # A wrong password or an unreachable database is said before anything starts.
        await source.check()
        daemon = Daemon(config, live=False)
        # Months of recordings would fill the transcription queue: only when asked for.
        wanted = IMPORT_DOMAINS + ((TRANSCRIPTION_DOMAIN,) if args.transcribe else ())
        if args.no_deliver:
            wanted = tuple(m for m in wanted if m != CRM_DOMAIN)
        attach_domains(daemon, tuple(m for m in DOMAIN_MODULES if m in wanted))
        marks = SourceMarks()
        daemon.after_write.append(marks.note_written)
        await daemon.start()
        try:
            assert daemon.session_factory is not None
            # A page's calls must be in the journal before its checkpoint; what follows the journal
            # (KPI figures, transcription jobs) catches up at its own pace, waited for at the end.
            writer = Writer(
                put=daemon.pipeline.put, flush=daemon.flush_journal, sessions=daemon.session_factory, marks=marks
            )
            span = (datetime.fromtimestamp(t, zone).isoformat() for t in (start, end))
            task = "import " + "..".join(span)
            progress = await run_backfill(
                source, tracker_settings(pbx), writer, start, end, task=task, cdr_only=args.cdr_only,
                page_rows=args.page_rows, max_rate=args.max_rate, on_progress=_reporter(),
            )
            await daemon.flush()
            if progress.new:
                progress.kpi_calls = await rebuild_kpis(config, daemon)
            return progress
        finally:
            await daemon.stop()
    finally:
        await source.close()


async def rebuild_kpis(config: Config, daemon: Daemon) -> int:
    """Every KPI fact and figure recomputed from the journal, in one transaction; the calls counted."""
    sessions = daemon.hub.write_sessions or daemon.session_factory
    assert sessions is not None
    recorder = KpiRecorder(KpiSettings.from_config(config))
    async with daemon.database_turn(), sessions() as session, session.begin():
        await session.connection(execution_options=WRITE)
        return await recorder.rebuild(session)


def _reporter() -> Callable[[Progress], None]:
    """A progress line: rewritten in place on a terminal, printed every LOG_EVERY_S otherwise."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def report(progress: Progress) -> None:
        now = clock.monotonic()
        if tty:
            print(f"\r{progress.line(now)}", end="", file=sys.stderr, flush=True)
        elif now - last[0] >= LOG_EVERY_S:
            last[0] = now
            print(progress.line(now), file=sys.stderr, flush=True)

    return report
