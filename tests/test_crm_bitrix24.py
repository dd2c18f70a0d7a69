"""Bitrix24 from the shared captures: `pbxbridge replay` with [crm.bitrix24] pointing at a fake portal,
then `pbxbridge outbox deliver --until-empty`: one register and one finish per call with the right
manager, number, type, duration and status, each recording's file, the transcript; and the same with
the portal down for the first half of the run: every delivery arrives once, in order per call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.cli.main import main
from pbxbridge.config import load_config
from pbxbridge.crm.connectors import targets_from_config
from pbxbridge.crm.queueing import CallQueue
from pbxbridge.crm.tables import CrmDelivery
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.tables import TranscriptSegment
from tests.conftest import fresh_database
from tests.fakes_bitrix24 import INNER_NUMBERS, FakeBitrix24
from tests.fakes_webhook import ServerThread

DEFAULT_USER = "201"
STATUS_CODES = {"answered": "200", "busy": "486"}


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """For what Bitrix24 answers rather than what the database does (the outbox runs on both elsewhere)."""
    yield from fresh_database(request, "sqlite", tmp_path)


def write_config(directory: Path, webhook_url: str) -> Path:
    path = directory / "pbxbridge.toml"
    path.write_text(
        "[crm]\nretry_initial_ms = 100\nretry_max_ms = 400\nmax_attempts = 50\n\n"
        f"[crm.bitrix24]\nwebhook_url = \"{webhook_url}\"\ndefault_user = \"{DEFAULT_USER}\"\nrequests_per_s = 200\n",
        encoding="utf-8",
    )
    return path


def replay_all(shared_dir: Path, db_url: str, config: Path) -> None:
    traces = sorted(str(p) for p in shared_dir.glob("*.ami"))
    assert main([
        "replay", *traces, "--db", db_url, "--config", str(config), "--recordings", str(shared_dir / "recordings"),
    ]) == 0


def scripted_calls(expected: dict[str, Any]) -> list[dict[str, Any]]:
    """The scripted calls a CRM hears of: every one with a client (calls between colleagues are not)."""
    return [
        {**call, "scenario": name}
        for name, scenario in expected.items()
        for call in scenario["calls"]
        if call["direction"] != "internal"
    ]


def run_db(db_url: str, work: Any) -> Any:
    async def run() -> Any:
        engine = make_engine(db_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def transcribe_first_recording(db_url: str, config: Path, client: str) -> int:
    """A transcript stored for the client's call's recording, queued as the daemon's hook queues it."""

    async def work(sessions: Any) -> int:
        async with sessions() as session, session.begin():
            recording = (
                await session.scalars(
                    select(Recording).join(Call).where(Call.client_number == f"+{client}", Recording.status == "ok")
                )
            ).one()
            for start, end, speaker, text in ((0.4, 2.6, "manager", "Добрый день, отдел продаж"),
                                              (3.1, 5.0, "client", "Здравствуйте, хочу заказать")):
                session.add(TranscriptSegment(recording_id=recording.id, call_id=recording.call_id, start_s=start,
                                              end_s=end, speaker=speaker, text=text, words=[], lemmas=""))
            await session.flush()
            queue = CallQueue(targets_from_config(load_config(config, {})), time.time)
            return await queue.note_transcript(session, recording.id)

    added: int = run_db(db_url, work)
    return added


def check_portal(fake: FakeBitrix24, expected: dict[str, Any]) -> None:
    """What a sales head would find in Bitrix24: each scripted call once, as it happened."""
    scripted = scripted_calls(expected)
    assert not fake.refused
    calls = {(c.registered["PHONE_NUMBER"].lstrip("+"), c.registered["TYPE"]): c for c in fake.calls.values()}
    assert len(fake.calls) == len(calls) == len(scripted)
    for truth in scripted:
        inbound = truth["direction"] == "inbound"
        call = calls[(truth["client"], 2 if inbound else 1)]
        where = (truth["scenario"], truth["client"])
        registered, finished = call.registered, call.finished
        assert finished is not None, where
        assert registered["EXTERNAL_CALL_ID"].startswith("main:"), where
        assert registered["SHOW"] == 0 and registered["CRM_CREATE"] == 1
        if inbound:
            assert registered["LINE_NUMBER"] == truth["did"], where
        manager = truth.get("answered_by") or truth.get("placed_by")
        first = manager or next(iter(truth.get("rang", [])), None)
        if first is not None:
            assert registered["USER_PHONE_INNER"] == first, where
        else:
            assert registered["USER_PHONE_INNER"] in INNER_NUMBERS, where
        final = truth.get("final_agent") or manager
        if final is not None:
            assert finished["USER_PHONE_INNER"] == final, where
        assert finished["STATUS_CODE"] == STATUS_CODES.get(truth["status"], "304"), where
        if "talk_s" in truth:
            low, high = truth["talk_s"]
            assert low - 2 <= finished["DURATION"] <= high + 2, where
        if truth["recording"]:
            # Each of its files (a transfer's consultation has one of its own), as the WAV it is.
            assert call.records and {r["head"] for r in call.records} == {b"RIFF"}, where
        elif truth["scenario"] != "17-voicemail":
            assert call.records == [], where
    # Per call: registered first, finished next, then its files.
    for call_id in fake.calls:
        order = [method for method, which in fake.log if which == call_id]
        assert order[:2] == ["register", "finish"] and set(order[2:]) <= {"attachRecord", "attachTranscription"}, order
    externals = [c.registered["EXTERNAL_CALL_ID"] for c in fake.calls.values()]
    assert len(set(externals)) == len(externals)


def test_replayed_captures_land_in_bitrix24_once_each_as_they_happened(
    db_url: str, shared_dir: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    fake = FakeBitrix24(drain_per_s=1000)
    server = ServerThread(fake.app).start()
    try:
        config = write_config(tmp_path, fake.webhook_url(server.url))
        replay_all(shared_dir, db_url, config)
        assert transcribe_first_recording(db_url, config, "79161110001") == 1
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "120", "--db", db_url,
                     "--config", str(config), "--recordings", str(shared_dir / "recordings")]) == 0
    finally:
        server.stop()
    check_portal(fake, expected)
    transcribed = next(c for c in fake.calls.values() if c.registered["PHONE_NUMBER"] == "+79161110001")
    assert transcribed.transcripts == [[
        {"SIDE": "User", "START_TIME": 0, "STOP_TIME": 3, "MESSAGE": "Добрый день, отдел продаж"},
        {"SIDE": "Client", "START_TIME": 3, "STOP_TIME": 5, "MESSAGE": "Здравствуйте, хочу заказать"},
    ]]


def test_portal_down_for_the_first_half_every_delivery_arrives_once_in_order(
    db_url: str, shared_dir: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    fake = FakeBitrix24(drain_per_s=1000)
    server = ServerThread(fake.app)
    config = write_config(tmp_path, fake.webhook_url(server.url))
    replay_all(shared_dir, db_url, config)

    async def queued(sessions: Any) -> tuple[int, int]:
        async with sessions() as session:
            rows = (await session.execute(select(func.count(), func.sum(CrmDelivery.attempts)))).one()
            return int(rows[0]), int(rows[1] or 0)

    total, _tries = run_db(db_url, queued)
    outcome: list[int] = []
    deliver = threading.Thread(target=lambda: outcome.append(main([
        "outbox", "deliver", "--until-empty", "--max-wait", "120", "--db", db_url, "--config", str(config),
        "--recordings", str(shared_dir / "recordings"),
    ])))
    deliver.start()
    try:
        # Down until every call's first delivery has failed twice: the portal was away for a while.
        calls = len(scripted_calls(expected))
        deadline = time.monotonic() + 60
        while run_db(db_url, queued)[1] < 2 * calls:
            assert time.monotonic() < deadline and deliver.is_alive()
            time.sleep(0.2)
        server.start()
        deliver.join(150)
        assert not deliver.is_alive() and outcome == [0]
    finally:
        server.stop()

    async def states(sessions: Any) -> set[str]:
        async with sessions() as session:
            return set((await session.scalars(select(CrmDelivery.status))).all())

    assert run_db(db_url, states) == {"done"}
    check_portal(fake, expected)
    # Exactly once: as many requests reached the portal as there were deliveries.
    assert len(fake.log) == total


def test_a_revoked_token_makes_dead_letters_and_retry_after_the_fix_delivers_them_in_order(
    sqlite_url: str, shared_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    db_url = sqlite_url
    # A small portal: most requests over its bucket are told QUERY_LIMIT_EXCEEDED and must simply wait.
    fake = FakeBitrix24(bucket_size=2, drain_per_s=2)
    server = ServerThread(fake.app).start()
    try:
        wrong = write_config(tmp_path, fake.webhook_url(server.url).replace("k3y9token", "revoked"))
        traces = [str(shared_dir / f"{name}.ami") for name in ("01-inbound-answered", "06-outbound-answered")]
        recordings = ["--recordings", str(shared_dir / "recordings")]
        assert main(["replay", *traces, "--db", db_url, "--config", str(wrong), *recordings]) == 0
        common = ["--db", db_url, *recordings]
        assert main(["outbox", "deliver", "--until-empty", *common, "--config", str(wrong)]) == 1
        capsys.readouterr()
        assert main(["outbox", "status", "--dead", *common, "--config", str(wrong)]) == 0
        status = capsys.readouterr().out
        assert "bitrix24: 0 pending, 0 delivered, 6 dead" in status
        assert "HTTP 401 NO_AUTH_FOUND" in status and "not registered in Bitrix24" in status
        assert fake.calls == {}

        right = write_config(tmp_path, fake.webhook_url(server.url))
        assert main(["outbox", "retry", "--dead", *common, "--config", str(right)]) == 0
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "60", *common, "--config", str(right)]) == 0
    finally:
        server.stop()
    assert fake.throttled > 0 and not fake.refused
    assert len(fake.calls) == 2 and len(fake.log) == 6
    for call_id in fake.calls:
        assert [m for m, which in fake.log if which == call_id] == ["register", "finish", "attachRecord"]


def test_a_register_whose_answer_was_lost_is_not_doubled(sqlite_url: str, shared_dir: Path, tmp_path: Path) -> None:
    db_url = sqlite_url
    # Bitrix24 took the register but the answer never came back: the retry is the same request,
    # and Bitrix24 gives the same CALL_ID to a register repeated before its finish.
    fake = FakeBitrix24(drain_per_s=1000, lose_answers=1)
    server = ServerThread(fake.app).start()
    try:
        config = write_config(tmp_path, fake.webhook_url(server.url))
        recordings = ["--recordings", str(shared_dir / "recordings")]
        trace = str(shared_dir / "06-outbound-answered.ami")
        assert main(["replay", trace, "--db", db_url, "--config", str(config), *recordings]) == 0
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "60", "--db", db_url,
                     "--config", str(config), *recordings]) == 0
    finally:
        server.stop()
    assert len(fake.calls) == 1 and fake.lose_answers == 0
    call = next(iter(fake.calls.values()))
    assert [m for m, _ in fake.log] == ["register", "register", "finish", "attachRecord"]
    assert call.finished is not None and call.finished["USER_PHONE_INNER"] == "203"
