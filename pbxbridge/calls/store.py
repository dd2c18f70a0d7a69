"""Writing finished calls to the journal: one transaction per call or per batch, idempotent by (pbx, linkedid)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value

from pbxbridge.calls.model import CallStatus, Direction, FinishedCall, is_outside_number
from pbxbridge.calls.tables import Call, CallParty, Recording
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.store import find_or_create_client
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.engine import WRITE
from pbxbridge.db.types import utc_from_unix
from pbxbridge.db.upsert import dialect_insert, insert_or_ignore
from pbxbridge.recordings.locate import LocatedRecording, locate_recording
from pbxbridge.recordings.voicemail import locate_voicemail

log = logging.getLogger(__name__)



# What a hook is given: (call_row, finished_call, is_new) for each call of the batch, in order;
# is_new is False when the journal held the call before (a replay, a reconnect).
Written = tuple[Call, FinishedCall, bool]
# Runs inside the transaction that writes a batch of calls, once for the whole batch: work a
# hook would repeat per call (rewriting a day's figures, deleting saved state) is done once.
AfterWrite = Callable[[AsyncSession, Sequence[Written]], Awaitable[None]]


@dataclass(slots=True)
class _Card:
    """What writing a call needs of a card: its id, and whether (and since when) it is a lead."""

    id: int
    is_lead: bool
    created_at: datetime


@dataclass(slots=True)
class _Lookups:
    """What one transaction already knows: manager ids by extension, cards by E.164 number."""

    managers: dict[str, int] = field(default_factory=dict)
    clients: dict[str, _Card] = field(default_factory=dict)
    # Managers as this transaction leaves them: (id, name) by extension, kept once it commits.
    learned: dict[str, tuple[int, str | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _BatchStatements:
    """The INSERT … RETURNING statements a batch of new calls is written with."""

    calls: Any
    parties: Any
    recordings: Any


class CallWriter:
    """Puts finished calls on clients' cards, with managers, parties and recordings."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Config,
        after_write: Sequence[AfterWrite] = (),
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.after_write: list[AfterWrite] = list(after_write)
        # Managers (id, name) by extension as of this writer's last commit: managers are only
        # added and named by call writers and never deleted, so a batch whose managers are all
        # known here, named as they should be, asks the database nothing about them.
        self._managers: dict[str, tuple[int, str | None]] = {}
        # The batch inserts, built once per dialect: building a statement costs more than
        # running one from SQLAlchemy's compiled cache.
        self._built: dict[str, _BatchStatements] = {}
        # Extension patterns by PBX name, compiled once.
        self._patterns: dict[str, re.Pattern[str]] = {}

    def _statements(self, session: AsyncSession) -> _BatchStatements:
        dialect = session.get_bind().dialect.name
        built = self._built.get(dialect)
        if built is None:
            # render_nulls: one statement for the batch, not one per pattern of NULL columns;
            # lazyload: the collections are set by _insert_calls, not read back.
            calls = (
                dialect_insert(session, Call)
                .on_conflict_do_nothing(index_elements=["pbx", "linkedid"])
                .returning(Call)
                .options(lazyload(Call.parties), lazyload(Call.recordings))
                .execution_options(render_nulls=True)
            )
            parties = (
                insert(CallParty).returning(CallParty, sort_by_parameter_order=True).execution_options(render_nulls=True)
            )
            recordings = (
                insert(Recording).returning(Recording, sort_by_parameter_order=True).execution_options(render_nulls=True)
            )
            built = self._built[dialect] = _BatchStatements(calls, parties, recordings)
        return built

    def _pattern(self, pbx: str) -> re.Pattern[str]:
        pattern = self._patterns.get(pbx)
        if pattern is None:
            pattern = self._patterns[pbx] = re.compile(self._pbx(pbx).extension_pattern)
        return pattern

    async def write(self, call: FinishedCall) -> Call:
        """Store one call (insert or refresh) and run the hooks, all in one transaction."""
        # Disk look-ups (possibly a walk of the archive) off the event loop and
        # before the transaction, so that no lock is held while they run.
        located = await asyncio.to_thread(self._locate_recordings, call)
        lookups = _Lookups()
        async with self.session_factory() as session:
            async with session.begin():
                await session.connection(execution_options=WRITE)
                lookups.managers = await self._upsert_managers(session, [call], lookups)
                row, is_new = await self._upsert_call(session, call, located, lookups)
                await run_hooks(self.after_write, session, [(row, call, is_new)])
            self._managers.update(lookups.learned)
            return row

    async def write_many(self, calls: Sequence[FinishedCall]) -> list[Call]:
        """Store a batch of calls in one transaction, in order; then the hooks, inside it.

        A hook with a batch form (``AfterWriteMany``) gets the whole batch at
        once; any other is called for each call in turn. Either every call of
        the batch is written or none is: a caller whose batch fails can write
        the calls one by one to find the one at fault.
        """
        if not calls:
            return []
        located: list[list[LocatedRecording]] = [[] for _call in calls]
        if any(call.recording_files or call.voicemail_file for call in calls):
            # A thread hop waits its turn on a busy event loop: only when there is disk to read.
            located = await asyncio.to_thread(lambda: [self._locate_recordings(call) for call in calls])
        written: list[Written] = []
        lookups = _Lookups()
        async with self.session_factory() as session, session.begin():
            await session.connection(execution_options=WRITE)
            # Managers and known cards of the whole batch first, a statement or two each.
            lookups.managers = await self._upsert_managers(session, calls, lookups)
            lookups.clients = await self._known_clients(session, calls)
            await self._new_clients(session, calls, lookups.clients)
            # Each call's first appearance in the batch, inserted in a few multi-row statements
            # unless the journal holds it already; those it holds (a replay, a reconnect), and
            # calls appearing twice, are refreshed one by one after.
            first: dict[tuple[str, str], int] = {}
            for index, call in enumerate(calls):
                first.setdefault((call.pbx, call.linkedid), index)
            inserted = await self._insert_calls(
                session, [calls[i] for i in first.values()], [located[i] for i in first.values()], lookups
            )
            for index, (call, found) in enumerate(zip(calls, located, strict=True)):
                key = (call.pbx, call.linkedid)
                row = inserted.get(key) if first[key] == index else None
                if row is not None:
                    written.append((row, call, True))
                else:
                    row, is_new = await self._upsert_call(session, call, found, lookups)
                    written.append((row, call, is_new))
            await run_hooks(self.after_write, session, written)
        self._managers.update(lookups.learned)
        return [row for row, _call, _new in written]

    async def _insert_calls(
        self,
        session: AsyncSession,
        calls: Sequence[FinishedCall],
        located: Sequence[list[LocatedRecording]],
        lookups: _Lookups,
    ) -> dict[tuple[str, str], Call]:
        """Calls the journal does not hold yet, with their parties and recordings: a statement per table.

        Returns the calls inserted by (pbx, linkedid); one the journal held
        already is left out (ON CONFLICT DO NOTHING), for ``_upsert_call``.
        ORM bulk inserts returning their rows: the calls come back as loaded
        objects, parties and recordings set on them as loaded collections, so
        hooks read them without asking the database again.
        """
        if not calls:
            return {}
        values = [
            {"pbx": call.pbx, "linkedid": call.linkedid, **await self._call_values(session, call, lookups)}
            for call in calls
        ]
        statements = self._statements(session)
        rows = {(row.pbx, row.linkedid): row for row in (await session.scalars(statements.calls, values)).all()}
        parties: list[dict[str, object]] = []
        recordings: list[dict[str, object]] = []
        for call, found in zip(calls, located, strict=True):
            row = rows.get((call.pbx, call.linkedid))
            if row is None:
                continue
            # In the order the relationship loads them, for hooks that read them.
            parties += [
                {"call_id": row.id, "extension": extension, "role": role, "position": position}
                for role, position, extension in sorted(_parties(call), key=lambda p: (p[0], p[1]))
            ]
            recordings += [_recording_values(row.id, position, one) for position, one in enumerate(found)]
        by_call: dict[int, tuple[list[CallParty], list[Recording]]] = {row.id: ([], []) for row in rows.values()}
        if parties:
            for party in (await session.scalars(statements.parties, parties)).all():
                by_call[party.call_id][0].append(party)
        if recordings:
            for recording in (await session.scalars(statements.recordings, recordings)).all():
                by_call[recording.call_id][1].append(recording)
        for row in rows.values():
            set_committed_value(row, "parties", by_call[row.id][0])
            set_committed_value(row, "recordings", by_call[row.id][1])
        return rows

    async def _upsert_call(
        self,
        session: AsyncSession,
        call: FinishedCall,
        located: list[LocatedRecording],
        lookups: _Lookups,
    ) -> tuple[Call, bool]:
        values = await self._call_values(session, call, lookups)
        # The same call may have been added earlier in this batch: it must be in the table first.
        await session.flush()
        call_id = await insert_or_ignore(
            session, table_of(Call), {"pbx": call.pbx, "linkedid": call.linkedid, **values}, ["pbx", "linkedid"]
        )
        is_new = call_id is not None
        if not is_new:
            # The same call again (replay, reconnect): refresh it, keep its id.
            log.debug("call %s/%s already in the journal; refreshing it", call.pbx, call.linkedid)
            result = await session.execute(
                update(Call)
                .where(Call.pbx == call.pbx, Call.linkedid == call.linkedid)
                .values(**values)
                .returning(Call.id)
            )
            call_id = result.scalar_one()
            await session.execute(delete(CallParty).where(CallParty.call_id == call_id))
        assert call_id is not None
        parties = [
            {"call_id": call_id, "extension": extension, "role": role, "position": position}
            for role, position, extension in _parties(call)
        ]
        if parties:
            # One executemany rather than an INSERT … RETURNING per party.
            await session.execute(insert(CallParty), parties)
        await self._sync_recordings(session, call_id, located, is_new)
        await session.flush()
        row = (
            await session.execute(
                select(Call).where(Call.id == call_id).execution_options(populate_existing=True)
            )
        ).scalar_one()
        return row, is_new

    async def _sync_recordings(
        self, session: AsyncSession, call_id: int, located: list[LocatedRecording], is_new: bool
    ) -> None:
        """Write the call's recordings, updating rows in place on a re-write.

        A recording's transcription job and transcript hang off its row: a
        call written again (replay, reconnect) must keep them, not cascade
        them away and transcribe the same file a second time.
        """
        existing: dict[int, Recording] = {}
        if not is_new:
            rows = await session.execute(select(Recording).where(Recording.call_id == call_id))
            existing = {r.position: r for r in rows.scalars()}
        for position, found in enumerate(located):
            fresh = Recording(**_recording_values(call_id, position, found))
            row = existing.pop(position, None)
            if row is not None and row.pbx_path == found.pbx_path:
                for column in ("path", "status", "format", "channels", "sample_rate", "duration_s", "size_bytes"):
                    setattr(row, column, getattr(fresh, column))
                continue
            if row is not None:
                await session.delete(row)
                await session.flush()
            session.add(fresh)
        for stale in existing.values():
            await session.delete(stale)

    async def _call_values(self, session: AsyncSession, call: FinishedCall, lookups: _Lookups) -> dict[str, object]:
        started = utc_from_unix(call.started_at)
        assert started is not None
        client_number = self._client_number(call)
        client_id = None
        if client_number is not None:
            client_id = await self._client_id(session, client_number, started, lookups)
        manager_ids = lookups.managers
        return {
            "direction": str(call.direction),
            "status": str(call.status),
            "client_id": client_id,
            "client_number": client_number,
            "did": call.did,
            "dialed": call.dialed,
            "manager": call.manager,
            "manager_id": manager_ids.get(call.manager) if call.manager else None,
            "final_manager": call.final_manager,
            "callee": call.callee,
            "rang": list(call.rang),
            "queues": list(call.queues),
            "transferred_to": list(call.transferred_to),
            "started_at": started,
            "answered_at": utc_from_unix(call.answered_at),
            "ended_at": utc_from_unix(call.ended_at),
            "wait_s": round(call.wait_s, 3),
            "talk_s": round(call.talk_s, 3),
            "originated": call.originated,
            "closed_by": str(call.closed_by),
            "failure_reason": str(call.failure_reason) if call.failure_reason else None,
            "voicemail": call.voicemail,
        }

    def _client_number(self, call: FinishedCall) -> str | None:
        """The client's E.164 number: the caller's, or for an outbound call what was dialled."""
        if call.direction == Direction.INTERNAL:
            return None
        region = self.settings.phone.default_region
        number = normalise_number(call.client_number, region)
        if number is None and call.direction == Direction.OUTBOUND:
            number = normalise_number(call.dialed, region)
        return number

    async def _known_clients(self, session: AsyncSession, calls: Sequence[FinishedCall]) -> dict[str, _Card]:
        """Cards that already hold the batch's numbers, looked up together (new numbers get theirs per call)."""
        numbers = sorted({n for call in calls if (n := self._client_number(call)) is not None})
        known: dict[str, _Card] = {}
        phones, cards = table_of(ClientPhone), table_of(Client)
        for some in chunks(numbers):
            # Plain columns, not loaded cards: a call needs a card's id and lead dating, nothing more.
            rows = await session.execute(
                select(phones.c.number, cards.c.id, cards.c.is_lead, cards.c.created_at)
                .join(cards, phones.c.client_id == cards.c.id)
                .where(phones.c.number.in_(some))
            )
            known.update((number, _Card(card_id, is_lead, created_at)) for number, card_id, is_lead, created_at in rows)
        return known

    async def _new_clients(self, session: AsyncSession, calls: Sequence[FinishedCall], known: dict[str, _Card]) -> None:
        """A lead's card for each number of the batch no card holds yet, in a few multi-row statements.

        Each card dates from its number's earliest call in the batch. A number
        another writer gave a card meanwhile is left out of ``known``: its calls
        then find that card one by one, as ``find_or_create_client`` does.
        """
        first: dict[str, datetime] = {}
        for call in calls:
            number = self._client_number(call)
            if number is None or number in known:
                continue
            started = utc_from_unix(call.started_at)
            assert started is not None
            first[number] = min(first.get(number, started), started)
        if not first:
            return
        dated = sorted(first.items())
        table = table_of(Client)
        # One multi-row statement; the ids come back in the order of the rows.
        result = await session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [{"is_lead": True, "created_at": at} for _number, at in dated],
        )
        cards = {number: _Card(card_id, True, at) for (number, at), card_id in zip(dated, result.scalars(), strict=True)}
        rows = [{"client_id": card.id, "number": number} for number, card in cards.items()]
        taken: set[str] = set()
        for some_rows in chunks(rows):
            insert_phones = dialect_insert(session, table_of(ClientPhone)).values(list(some_rows))
            stmt = insert_phones.on_conflict_do_nothing(index_elements=["number"]).returning(ClientPhone.number)
            taken.update((await session.execute(stmt)).scalars())
        lost = [card.id for number, card in cards.items() if number not in taken]
        if lost:
            await session.execute(delete(table).where(table.c.id.in_(lost)))
        known.update((number, card) for number, card in cards.items() if number in taken)

    def _pbx(self, name: str) -> PbxConfig:
        try:
            return self.settings.pbx_by_name(name)
        except KeyError:
            # A call from a PBX not in the settings (a replayed trace): FreePBX defaults.
            return PbxConfig(name=name)

    async def _client_id(self, session: AsyncSession, number: str, started: datetime, lookups: _Lookups) -> int:
        card = lookups.clients.get(number)
        if card is None:
            client, _created = await find_or_create_client(session, number, started)
            # Its dating is written now: a later call of the batch moves it by a statement of its own.
            await session.flush()
            card = lookups.clients[number] = _Card(client.id, client.is_lead, client.created_at)
        elif card.is_lead and started < card.created_at:
            # As find_or_create_client does: a lead's card dates from its earliest call.
            table = table_of(Client)
            await session.execute(update(table).where(table.c.id == card.id).values(created_at=started))
            card.created_at = started
        return card.id

    async def _upsert_managers(
        self, session: AsyncSession, calls: Sequence[FinishedCall], lookups: _Lookups
    ) -> dict[str, int]:
        # extension -> the queue's MemberName for it, from the first call that gives one.
        extensions: dict[str, str | None] = {}
        for call in calls:
            pattern = self._pattern(call.pbx)
            for ext in (call.manager, call.final_manager, call.callee, *call.rang, *call.transferred_to):
                if ext and pattern.match(ext) and not extensions.get(ext):
                    extensions[ext] = call.member_names.get(ext) or extensions.get(ext)
        ids: dict[str, int] = {}
        if not extensions:
            return ids
        # extension -> (the name it should have, whether the settings give it)
        wanted = {ext: self._manager_name(ext, member) for ext, member in extensions.items()}
        cached = self._managers
        if all(ext in cached and not _renames(cached[ext][1], *wanted[ext]) for ext in extensions):
            return {ext: cached[ext][0] for ext in extensions}
        # Managers the journal knows, in one statement; only new extensions are inserted.
        known = {
            m.extension: m
            for m in (await session.scalars(select(Manager).where(Manager.extension.in_(sorted(extensions))))).all()
        }
        # One order for every writer, so two writers sharing managers cannot deadlock on them.
        for ext in sorted(extensions):
            name, configured = wanted[ext]
            manager = known.get(ext)
            if manager is None:
                new_id = await insert_or_ignore(
                    session, table_of(Manager), {"extension": ext, "name": name}, ["extension"]
                )
                if new_id is not None:
                    ids[ext] = new_id
                    lookups.learned[ext] = (new_id, name)
                    continue
                manager = (await session.execute(select(Manager).where(Manager.extension == ext))).scalar_one()
            ids[ext] = manager.id
            if _renames(manager.name, name, configured):
                manager.name = name
            lookups.learned[ext] = (manager.id, manager.name)
        return ids

    def _manager_name(self, extension: str, member_name: str | None) -> tuple[str | None, bool]:
        """The name a manager should have, and whether it is the settings' (else the queue's MemberName)."""
        configured = self.settings.managers.get(extension)
        return configured or member_name, bool(configured)

    def _locate_recordings(self, call: FinishedCall) -> list[LocatedRecording]:
        settings = self.settings.recordings
        root = Path(settings.root)
        found = [locate_recording(pbx_path, root, settings.spool_prefix) for pbx_path in call.recording_files]
        if call.voicemail_file:
            found.append(
                locate_voicemail(
                    call.voicemail_file,
                    settings.voicemail_root,
                    caller=call.client_number,
                    started_at=call.started_at,
                    ended_at=call.ended_at,
                )
            )
        return found


def _renames(current: str | None, name: str | None, configured: bool) -> bool:
    """Whether a manager named ``current`` takes ``name``.

    The settings name a manager for good; a queue's MemberName only fills a blank.
    """
    return bool(name) and current != name and (configured or current is None)


async def run_hooks(hooks: Sequence[AfterWrite], session: AsyncSession, written: Sequence[Written]) -> None:
    """Each hook in turn, with the whole batch."""
    for hook in hooks:
        await hook(session, written)


def _recording_values(call_id: int, position: int, found: LocatedRecording) -> dict[str, object]:
    return {
        "call_id": call_id,
        "position": position,
        "pbx_path": found.pbx_path,
        "path": found.path,
        "status": str(found.status),
        "format": found.format,
        "channels": found.channels,
        "sample_rate": found.sample_rate,
        "duration_s": found.duration_s,
        "size_bytes": found.size_bytes,
        "kind": found.kind,
    }


def _parties(call: FinishedCall) -> list[tuple[str, int, str]]:
    """(role, position, extension) for everyone who had a part in the call."""
    parties: list[tuple[str, int, str]] = [("rang", i, ext) for i, ext in enumerate(call.rang)]
    if call.manager:
        if call.direction == Direction.INBOUND:
            if call.status == CallStatus.ANSWERED:
                parties.append(("answered", 0, call.manager))
        else:
            parties.append(("placed", 0, call.manager))
    # An outside number the client was forwarded to is on the call, not one of its parties.
    parties += [
        ("transferred_to", i, ext) for i, ext in enumerate(call.transferred_to) if not is_outside_number(ext)
    ]
    if call.direction == Direction.INTERNAL and call.callee:
        parties.append(("called", 0, call.callee))
    return parties
