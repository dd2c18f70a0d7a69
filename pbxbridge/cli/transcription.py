"""Transcription subcommands: transcribe-worker, transcribe, search, transcript."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.cli.common import add_common_options, config_or_exit
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory, upgrade
from pbxbridge.transcription.engines import DEFAULT_CHANNEL_SPEAKERS, EngineSettings
from pbxbridge.transcription.engines import make_engine as make_stt
from pbxbridge.transcription.queue import DEFAULT_STALE_AFTER_S, enqueue, enqueue_all
from pbxbridge.transcription.search import SearchFilters, SearchQueryError, search
from pbxbridge.transcription.tables import QUEUED, TranscriptionJob
from pbxbridge.transcription.transcripts import call_transcript
from pbxbridge.transcription.worker import (
    EngineHolder,
    JobOutcome,
    WorkerSettings,
    default_worker_id,
    run_worker,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the transcription subcommands to the pbxbridge command line."""
    p = subparsers.add_parser("transcribe-worker", help="transcribe queued recordings (one model per process)")
    add_common_options(p)
    p.add_argument("--once", action="store_true", help="exit when no job is due instead of waiting for more")
    p.add_argument("--worker-id", default=None, metavar="ID", help="name in the queue (default: host-pid)")
    p.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER_S, metavar="S",
                   help="take over a running job whose worker has been silent this long")
    p.add_argument("--heartbeat", type=float, default=15.0, metavar="S", help="seconds between heartbeats")
    p.add_argument("--backoff", type=float, default=60.0, metavar="S", help="first retry delay (doubles)")
    p.set_defaults(func=cmd_worker)

    p = subparsers.add_parser("transcribe", help="queue calls' recordings for transcription")
    add_common_options(p)
    p.add_argument("linkedids", nargs="*", metavar="LINKEDID", help="calls to (re)transcribe")
    p.add_argument("--all", action="store_true", help="back-fill: every recording not yet queued, transcribed here")
    p.add_argument("--enqueue-only", action="store_true", help="leave the transcribing to the workers")
    p.set_defaults(func=cmd_transcribe)

    p = subparsers.add_parser("search", help="find calls by a spoken word (any form), client name or number")
    add_common_options(p)
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="one JSON object per hit per line")
    p.add_argument("--manager", default=None, metavar="EXT")
    p.add_argument("--client", default=None, metavar="NUMBER_OR_NAME")
    p.add_argument("--direction", choices=("inbound", "outbound", "internal"), default=None)
    p.add_argument("--status", default=None)
    p.add_argument("--from", dest="date_from", type=_moment, default=None, metavar="ISO_DATE",
                   help="calls from this day (the department's, kpi.timezone) or ISO 8601 time on")
    p.add_argument("--to", dest="date_to", type=_moment, default=None, metavar="ISO_DATE",
                   help="calls up to this day, inclusive, or up to this ISO 8601 time")
    p.add_argument("--min-duration", type=float, default=None, metavar="S")
    p.add_argument("--max-duration", type=float, default=None, metavar="S")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=cmd_search)

    p = subparsers.add_parser("transcript", help="print a call's transcript")
    add_common_options(p)
    p.add_argument("linkedid", metavar="LINKEDID")
    p.add_argument("--pbx", default=None, metavar="NAME")
    p.add_argument("--json", action="store_true", help="one JSON object per segment per line")
    p.set_defaults(func=cmd_transcript)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _moment(value: str) -> str:
    """argparse type: a date or an ISO 8601 time, checked at once; read as a moment once the time zone is known."""
    try:
        date.fromisoformat(value) if _DAY.fullmatch(value) else datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date (YYYY-MM-DD) or an ISO 8601 time, got {value!r}") from None
    return value


def search_bound(value: str | None, zone: ZoneInfo, end: bool) -> datetime | None:
    """A --from/--to value as a moment, read as the journal page and `pbxbridge kpi` read it.

    A bare date is the department's local day, and --to takes that day in whole: ``--from D --to D``
    is the calls of day D. A time without an offset is the department's local time too.
    """
    if value is None:
        return None
    if _DAY.fullmatch(value):
        day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
        return datetime.combine(day, time(), zone)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def engine_settings(config: Config) -> EngineSettings:
    """Speech-recognition settings from the [transcription] section."""
    return EngineSettings.from_config(config.transcription)


def worker_settings(config: Config, args: argparse.Namespace, worker_id: str | None = None) -> WorkerSettings:
    """Queue behaviour from config and command-line options."""
    speakers = tuple(getattr(config.transcription, "channel_speakers", DEFAULT_CHANNEL_SPEAKERS))
    return WorkerSettings(
        recordings_root=Path(config.recordings.root),
        worker_id=worker_id or getattr(args, "worker_id", None) or default_worker_id(),
        max_attempts=config.transcription.max_attempts,
        stale_after_s=getattr(args, "stale_after", DEFAULT_STALE_AFTER_S),
        heartbeat_s=getattr(args, "heartbeat", 15.0),
        backoff_base_s=getattr(args, "backoff", 60.0),
        channel_speakers=(speakers[0], speakers[1]),
    )


def _logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _worker(config: Config, args: argparse.Namespace) -> int:
    engine = make_engine(config.database.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # systemd stops a worker with SIGTERM: finish the current recording's
        # bookkeeping rather than leave it to the stale-job takeover.
        loop.add_signal_handler(sig, stop.set)
    try:
        stt = engine_settings(config)
        settings = worker_settings(config, args)
        # Ops (and the daemon's tests) see each worker come up, with the id its jobs carry.
        logging.getLogger(__name__).info(
            "transcription worker %s waiting for recordings (%s)", settings.worker_id, stt.model or stt.engine
        )
        await run_worker(
            session_factory(engine), EngineHolder(lambda: make_stt(stt)), settings, once=args.once, stop=stop,
        )
    finally:
        await engine.dispose()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one transcription worker."""
    from pbxbridge.transcription.daemon import die_with_parent

    die_with_parent()
    config = config_or_exit(args)
    _logging()
    # No schema upgrade here: N workers starting at once would race each
    # other's migrations; `pbxbridge db upgrade` (or the daemon) does it.
    return asyncio.run(_worker(config, args))


async def _backfill(config: Config, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    engine = make_engine(config.database.url)
    factory = session_factory(engine)
    try:
        async with factory() as session, session.begin():
            if args.all:
                added = await enqueue_all(session)
            else:
                ids = (
                    await session.scalars(
                        select(Recording.id).join(Call, Call.id == Recording.call_id).where(
                            Call.linkedid.in_(args.linkedids), Recording.status == "ok", Recording.kind == "call"
                        )
                    )
                ).all()
                added = await enqueue(session, list(ids), requeue=True)
                if not ids:
                    print("no recording with sound for those calls", file=sys.stderr)
                    return 1
            queued = await session.scalar(
                select(func.count()).select_from(TranscriptionJob).where(TranscriptionJob.status == QUEUED)
            )
        print(f"{added} recording(s) queued, {queued} waiting", file=sys.stderr)
        if args.enqueue_only or not args.all:
            return 0
        failed = 0
        with tqdm(total=queued, unit="rec", desc="transcribing", dynamic_ncols=True) as bar:

            def progress(outcome: JobOutcome) -> None:
                nonlocal failed
                failed += outcome.status == "failed"
                bar.set_postfix(failed=failed, refresh=False)
                bar.update(1)

            stt = engine_settings(config)
            await run_worker(
                factory, EngineHolder(lambda: make_stt(stt)), worker_settings(config, args, f"backfill-{default_worker_id()}"),
                once=True, on_outcome=progress,
            )
        return 1 if failed else 0
    finally:
        await engine.dispose()


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Queue recordings; with --all also transcribe them here, with a progress bar."""
    if not args.all and not args.linkedids:
        print("name calls by LINKEDID, or use --all", file=sys.stderr)
        return 2
    config = config_or_exit(args)
    upgrade(config.database.url)
    return asyncio.run(_backfill(config, args))


async def _search(config: Config, args: argparse.Namespace) -> int:
    zone = ZoneInfo(config.kpi.timezone)
    engine = make_engine(config.database.url)
    try:
        filters = SearchFilters(
            manager=args.manager, client=args.client, direction=args.direction, status=args.status,
            date_from=search_bound(args.date_from, zone, end=False),
            date_to=search_bound(args.date_to, zone, end=True),
            min_duration_s=args.min_duration, max_duration_s=args.max_duration, limit=args.limit,
        )
        hits = await search(session_factory(engine), args.query, filters)
    except SearchQueryError as exc:
        # A query the search will not run: its reason, not a traceback.
        print(f"search: {exc}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    for hit in hits:
        if args.json:
            print(json.dumps(hit.as_dict(), ensure_ascii=False))
        else:
            who = hit.client_name or hit.client_number or "-"
            print(f"{hit.started_at}  {hit.linkedid}  {who}  {hit.manager or '-'}  @{hit.offset_s:.1f}s  {hit.snippet}")
    return 0 if hits else 1


def cmd_search(args: argparse.Namespace) -> int:
    """Print hits, newest call first; exit 1 when nothing matched."""
    return asyncio.run(_search(config_or_exit(args), args))


async def _transcript(config: Config, args: argparse.Namespace) -> int:
    engine = make_engine(config.database.url)
    try:
        segments = await call_transcript(session_factory(engine), args.linkedid, args.pbx)
    finally:
        await engine.dispose()
    if segments is None:
        print(f"no call with linkedid {args.linkedid}", file=sys.stderr)
        return 1
    for seg in segments:
        if args.json:
            out = {k: seg[k] for k in ("recording", "start", "end", "speaker", "text")}
            print(json.dumps(out, ensure_ascii=False))
        else:
            print(f"[{seg['start']:7.2f}-{seg['end']:7.2f}] {seg['speaker'] or '':8} {seg['text']}")
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    """Print a call's transcript, segment by segment."""
    return asyncio.run(_transcript(config_or_exit(args), args))
