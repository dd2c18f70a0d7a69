"""Finished calls from captured streams written to the journal, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.journal import fetch_journal
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter, Written
from pbxbridge.calls.tables import Call, CallParty, Recording
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import Config, PbxConfig, load_config
from pbxbridge.recordings.locate import RecordingStatus, locate_recording

SPOOL = "/var/spool/asterisk/monitor"


@functools.cache
def _calls_of(path: Path) -> tuple[FinishedCall, ...]:
    return tuple(replay_trace(path, tracker_settings(PbxConfig())))


@pytest.fixture
def calls_of(shared_dir: Path) -> Any:
    """Calls the tracker finished in a captured scenario, by scenario name."""
    return lambda scenario: list(_calls_of(shared_dir / f"{scenario}.ami"))


@pytest.fixture
def config(shared_dir: Path) -> Config:
    cfg = load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings")})
    return cfg


async def _count(factory: async_sessionmaker[AsyncSession], model: type) -> int:
    async with factory() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def _journal(factory: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    async with factory() as session:
        return await fetch_journal(session)


async def test_answered_call_from_trace_lands_on_new_lead_card(sessions, config, calls_of, expected) -> None:
    (call,) = calls_of("01-inbound-answered")
    row = await CallWriter(sessions, config).write(call)
    scripted = expected["01-inbound-answered"]["calls"][0]

    (entry,) = await _journal(sessions)
    assert entry["linkedid"] == call.linkedid
    assert entry["direction"] == "inbound" and entry["status"] == "answered"
    assert entry["client_number"] == "+" + scripted["client"]
    assert entry["manager"] == scripted["answered_by"]
    assert entry["rang"] == scripted["rang"]
    assert scripted["wait_s"][0] <= entry["wait_s"] <= scripted["wait_s"][1]
    assert scripted["talk_s"][0] <= entry["talk_s"] <= scripted["talk_s"][1]
    assert entry["started_at"].endswith("Z")
    assert datetime.fromisoformat(entry["started_at"]) == datetime.fromtimestamp(call.started_at, UTC)

    async with sessions() as session:
        client = (await session.execute(select(Client))).scalar_one()
        phones = (await session.execute(select(ClientPhone.number))).scalars().all()
        manager = (await session.execute(select(Manager).where(Manager.extension == "203"))).scalar_one()
        parties = (
            await session.execute(select(CallParty.role, CallParty.extension).where(CallParty.call_id == row.id))
        ).all()
    assert client.is_lead is True
    assert client.created_at == datetime.fromtimestamp(call.started_at, UTC)
    assert entry["client_id"] == client.id
    assert phones == ["+79161110001"]
    # The queue announced its member's name; the card shows it.
    assert manager.name == "Anna Kuznetsova"
    assert sorted(parties) == [("answered", "203"), ("rang", "203")]


async def test_writing_the_same_call_twice_leaves_one_and_tells_hooks(sessions, config, calls_of) -> None:
    (call,) = calls_of("02-inbound-second-agent")
    told: list[bool] = []

    async def hook(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, finished, is_new in written:
            # Runs inside the call's transaction: the row is visible through this session.
            count = (await session.execute(select(func.count()).select_from(Call))).scalar_one()
            assert count == 1 and row.linkedid == finished.linkedid
            told.append(is_new)

    writer = CallWriter(sessions, config, after_write=[hook])
    first = await writer.write(call)
    again = await writer.write(call)

    assert told == [True, False]
    assert first.id == again.id
    assert await _count(sessions, Call) == 1
    assert await _count(sessions, Client) == 1
    assert await _count(sessions, CallParty) == 3  # rang 203, rang 202, answered 202
    assert await _count(sessions, Recording) == 1


async def test_hook_failure_rolls_the_call_back(sessions, config, calls_of) -> None:
    (call,) = calls_of("06-outbound-answered")

    async def broken(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, finished, is_new in written:
            raise RuntimeError("KPI store down")

    with pytest.raises(RuntimeError):
        await CallWriter(sessions, config, after_write=[broken]).write(call)
    assert await _count(sessions, Call) == 0
    assert await _count(sessions, Client) == 0


async def test_number_forms_map_to_one_client(sessions, config, calls_of) -> None:
    # 09: the manager dialled 8916…; the same client calls in as 7916… and +7 916 ….
    (outbound,) = calls_of("09-outbound-8-prefix")
    (inbound,) = calls_of("01-inbound-answered")
    writer = CallWriter(sessions, config)
    await writer.write(outbound)
    await writer.write(dataclasses.replace(inbound, linkedid="x-1", client_number="79162220004"))
    await writer.write(dataclasses.replace(inbound, linkedid="x-2", client_number="+7 916 222-00-04"))
    await writer.write(dataclasses.replace(inbound, linkedid="x-3", client_number="89162220004"))

    journal = await _journal(sessions)
    assert outbound.dialed == "89162220004"
    assert {e["client_number"] for e in journal} == {"+79162220004"}
    assert len({e["client_id"] for e in journal}) == 1
    assert await _count(sessions, Client) == 1
    assert await _count(sessions, ClientPhone) == 1


async def test_missed_call_and_callback_share_the_card(sessions, config, calls_of) -> None:
    missed, callback = sorted(calls_of("11-missed-then-callback"), key=lambda c: c.started_at)
    writer = CallWriter(sessions, config)
    # Written concurrently, as two PBX connections would: still one card for the number.
    await asyncio.gather(writer.write(missed), writer.write(callback))
    journal = await _journal(sessions)
    assert [e["status"] for e in journal] == ["abandoned", "answered"]
    assert journal[0]["client_id"] == journal[1]["client_id"] is not None
    async with sessions() as session:
        (client,) = (await session.execute(select(Client))).scalars().all()
    # The card dates from the first contact, whichever write came first.
    assert client.created_at == datetime.fromtimestamp(missed.started_at, UTC)


async def test_lead_card_dates_from_earliest_call_even_if_written_last(sessions, config, calls_of) -> None:
    missed, callback = sorted(calls_of("11-missed-then-callback"), key=lambda c: c.started_at)
    writer = CallWriter(sessions, config)
    await writer.write(callback)
    await writer.write(missed)
    async with sessions() as session:
        (client,) = (await session.execute(select(Client))).scalars().all()
    assert client.is_lead and client.created_at == datetime.fromtimestamp(missed.started_at, UTC)


async def test_concurrent_writers_of_one_call_make_one_row(sessions, config, calls_of) -> None:
    (call,) = calls_of("04-inbound-overflow")
    told: list[bool] = []

    async def hook(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, finished, is_new in written:
            told.append(is_new)

    writers = [CallWriter(sessions, config, after_write=[hook]) for _ in range(3)]
    await asyncio.gather(*(w.write(call) for w in writers))
    assert sorted(told) == [False, False, True]
    assert await _count(sessions, Call) == 1
    assert await _count(sessions, Client) == 1


async def test_burst_of_calls_written_concurrently(sessions, config, calls_of, expected) -> None:
    calls = calls_of("13-burst")
    writer = CallWriter(sessions, config)
    await asyncio.gather(*(writer.write(c) for c in calls))
    journal = await _journal(sessions)
    scripted = expected["13-burst"]["calls"]
    assert len(journal) == len(scripted)
    assert sorted(e["client_number"] for e in journal) == sorted("+" + s["client"] for s in scripted)
    assert [e["started_at"] for e in journal] == sorted(e["started_at"] for e in journal)
    assert await _count(sessions, Client) == len(scripted)


async def test_header_only_file_is_not_a_recording(sessions, config, calls_of) -> None:
    (call,) = calls_of("03-inbound-abandoned")
    await CallWriter(sessions, config).write(call)
    (entry,) = await _journal(sessions)
    assert entry["recording"] is None and entry["recordings"] == []
    async with sessions() as session:
        (rec,) = (await session.execute(select(Recording))).scalars().all()
    assert rec.status == "empty"
    assert rec.size_bytes == 44
    assert rec.path is not None and rec.pbx_path == call.recording_files[0]


async def test_recording_with_sound_is_on_the_journal(sessions, config, calls_of, shared_dir) -> None:
    (call,) = calls_of("12-blind-transfer")
    await CallWriter(sessions, config).write(call)
    (entry,) = await _journal(sessions)
    assert entry["recording"] is not None
    assert (shared_dir / "recordings" / entry["recording"]).stat().st_size > 44
    assert entry["recording"] == call.recording_files[0].removeprefix(SPOOL + "/")
    assert entry["transferred_to"] == ["202"] and entry["final_manager"] == "202"
    async with sessions() as session:
        recs = (await session.execute(select(Recording).order_by(Recording.position))).scalars().all()
    assert recs[0].status == "ok" and recs[0].sample_rate == 8000 and recs[0].channels == 1
    assert recs[0].duration_s is not None and recs[0].duration_s > 1


async def test_missing_recordings_root_marks_files_missing(sessions, calls_of, tmp_path) -> None:
    config = load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(tmp_path / "nowhere")})
    (call,) = calls_of("01-inbound-answered")
    await CallWriter(sessions, config).write(call)
    (entry,) = await _journal(sessions)
    assert entry["recording"] is None
    async with sessions() as session:
        (rec,) = (await session.execute(select(Recording))).scalars().all()
    assert rec.status == "missing" and rec.path is None


async def test_internal_call_has_no_client(sessions, config, calls_of) -> None:
    (call,) = calls_of("10-internal")
    await CallWriter(sessions, config).write(call)
    (entry,) = await _journal(sessions)
    assert entry["direction"] == "internal"
    assert entry["client_number"] is None and entry["client_id"] is None
    assert await _count(sessions, Client) == 0
    async with sessions() as session:
        exts = set((await session.execute(select(Manager.extension))).scalars().all())
    assert {"201", "202"} <= exts


async def test_configured_manager_name_wins_over_queue_name(sessions, shared_dir, calls_of) -> None:
    config = load_config(
        None,
        {"PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings"), "PBXBRIDGE_MANAGERS__203": "Anna K. (sales)"},
    )
    (call,) = calls_of("01-inbound-answered")
    await CallWriter(sessions, config).write(call)
    async with sessions() as session:
        manager = (await session.execute(select(Manager).where(Manager.extension == "203"))).scalar_one()
        row = (await session.execute(select(Call))).scalar_one()
    assert manager.name == "Anna K. (sales)"
    assert row.manager_id == manager.id


# Recording files: MixMonitor's path on the PBX -> the file under the recordings root.

REC = "2026/11/26/in-74951234567-79161110001-20261126-200409-1795723449.4.wav"
HEADER_ONLY = "2026/11/26/in-74951234567-79161110003-20261126-200529-1795723529.14.wav"


def test_locate_strips_spool_prefix(shared_dir: Path) -> None:
    found = locate_recording(f"{SPOOL}/{REC}", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.OK and found.path == REC


def test_locate_falls_back_to_dated_tail(shared_dir: Path) -> None:
    # The spool lives elsewhere on this PBX (prefix not configured to match).
    found = locate_recording(f"/mnt/pbx-spool/{REC}", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.OK and found.path == REC


def test_locate_finds_bare_name(shared_dir: Path) -> None:
    # CDR(recordingfile) carries the name only.
    found = locate_recording(Path(REC).name, shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.OK and found.path == REC


def test_locate_header_only_is_empty(shared_dir: Path) -> None:
    found = locate_recording(f"{SPOOL}/{HEADER_ONLY}", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.EMPTY and found.path == HEADER_ONLY and found.size_bytes == 44


def test_locate_absent_file_is_missing(shared_dir: Path) -> None:
    found = locate_recording(f"{SPOOL}/2026/11/26/in-nobody.wav", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.MISSING and found.path is None


def test_locate_does_not_leave_the_root(shared_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"\0" * 100)
    found = locate_recording(f"{SPOOL}/../secret.wav", root, SPOOL)
    assert found.status == RecordingStatus.MISSING


def test_locate_name_is_not_a_pattern(shared_dir: Path) -> None:
    found = locate_recording(f"/elsewhere/in-*-{Path(REC).name[-20:]}", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.MISSING
    found = locate_recording("/elsewhere/*.wav", shared_dir / "recordings", SPOOL)
    assert found.status == RecordingStatus.MISSING
