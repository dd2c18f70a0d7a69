"""Retention: recordings and transcripts of old calls are deleted after the days the settings allow.

Only files that belong to a call's recording row and resolve inside the
recordings root are ever touched; the call itself stays on the client's card.
Every deletion is logged and, given an ``audit`` writer (the web app's audit
log, which the command line passes in), audited in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import Config
from pbxbridge.db.engine import WRITE

log = logging.getLogger(__name__)

# A recording row whose file retention removed.
DELETED = "deleted"
# Writes one audit entry inside the caller's transaction: (session, action, target, details).
Audit = Callable[[AsyncSession, str, str, dict[str, Any]], Awaitable[None]]


# Deletes the transcripts of calls started before a moment (the transcription domain's, passed in).
TranscriptRetention = Callable[
    [async_sessionmaker[AsyncSession], datetime, "RetentionReport", Audit], Awaitable[None]
]


async def _no_audit(_session: AsyncSession, _action: str, _target: str, _details: dict[str, Any]) -> None:
    return None


@dataclass(slots=True)
class RetentionReport:
    """What one run deleted (or, on a dry run, would delete)."""

    dry_run: bool
    recordings_deleted: int = 0
    bytes_freed: int = 0
    # Rows marked deleted whose file was already gone.
    recordings_already_gone: int = 0
    # Paths that resolve outside the recordings root: never touched.
    recordings_refused: list[str] = field(default_factory=list)
    transcript_segments_deleted: int = 0
    transcript_calls: int = 0

    def summary(self) -> str:
        """One line for the operator."""
        verb = "would delete" if self.dry_run else "deleted"
        line = (
            f"{verb} {self.recordings_deleted} recording file(s) ({self.bytes_freed} bytes), "
            f"{self.transcript_segments_deleted} transcript segment(s) of {self.transcript_calls} call(s)"
        )
        if self.recordings_already_gone:
            line += f"; {self.recordings_already_gone} recording(s) already gone"
        if self.recordings_refused:
            line += f"; {len(self.recordings_refused)} path(s) outside the recordings root refused"
        return line


def inside_root(root: Path, relative: str | None) -> Path | None:
    """The file a recording row names, if it resolves under the root; None otherwise."""
    if not relative or "\x00" in relative:
        return None
    candidate = Path(relative)
    if candidate.is_absolute():
        return None
    base = root.resolve()
    # resolve() follows symbolic links: a link pointing out of the root is refused too.
    target = (base / candidate).resolve()
    if target == base or not target.is_relative_to(base):
        return None
    return target


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession],
    config: Config,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    audit: Audit = _no_audit,
    transcripts: TranscriptRetention | None = None,
) -> RetentionReport:
    """Delete what the ``[retention]`` settings say is too old; report what was (or would be) done."""
    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run)
    days = config.retention.recordings_days
    if days > 0:
        await _recordings(sessions, Path(config.recordings.root), now - timedelta(days=days), report, audit)
    days = config.retention.transcripts_days
    if days > 0 and transcripts is not None:
        await transcripts(sessions, now - timedelta(days=days), report, audit)
    log.info("retention: %s", report.summary(), extra={"dry_run": dry_run})
    return report


async def _recordings(
    sessions: async_sessionmaker[AsyncSession], root: Path, before: datetime, report: RetentionReport, audit: Audit
) -> None:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Recording.id, Recording.path, Recording.size_bytes, Call.id, Call.pbx, Call.linkedid)
                .join(Call, Recording.call_id == Call.id)
                # Voicemail messages are the PBX's own spool: its retention, not ours.
                .where(
                    Call.started_at < before,
                    Recording.status != DELETED,
                    Recording.path.is_not(None),
                    Recording.kind == "call",
                )
                .order_by(Call.started_at, Recording.id)
            )
        ).all()
    for rec_id, relative, size, call_id, pbx, linkedid in rows:
        where = {"pbx": pbx, "linkedid": linkedid, "recording_id": rec_id}
        target = inside_root(root, relative)
        if target is None:
            report.recordings_refused.append(str(relative))
            log.warning("retention: recording %d path %r is outside the recordings root; left alone",
                        rec_id, relative, extra=where)
            continue
        exists = target.is_file()
        freed = target.stat().st_size if exists else 0
        if report.dry_run:
            log.info("retention: would delete recording %s", relative, extra=where)
        else:
            # One transaction per file: a crash halfway leaves every row telling the truth
            # (a file deleted but its row not yet marked is marked on the next run).
            async with sessions() as session:
                async with session.begin():
                    await session.connection(execution_options=WRITE)
                    if exists:
                        target.unlink(missing_ok=True)
                    await session.execute(update(Recording).where(Recording.id == rec_id).values(status=DELETED))
                    await audit(session, "retention.recording_deleted", f"recording:{rec_id}",
                                {"call_id": call_id, "path": relative, "bytes": freed, "file_found": exists})
            log.info("retention: deleted recording %s", relative, extra=where)
        if exists:
            report.recordings_deleted += 1
            report.bytes_freed += freed or int(size or 0)
        else:
            report.recordings_already_gone += 1
