"""Finding calls by a spoken word in any form, by client number or name, with filters."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.cli.main import main
from pbxbridge.clients.tables import Client
from pbxbridge.config import PbxConfig
from pbxbridge.transcription.lemmas import lemmatise
from pbxbridge.transcription.queue import claim, complete
from pbxbridge.transcription.search import (
    SearchFilters,
    _locate,
    _Marks,
    _wanted,
    search,
)
from pbxbridge.transcription.tables import TranscriptSegment
from pbxbridge.transcription.transcript import Segment, Transcript, Word
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_transcription import (
    PROMPTS,
    CachedEngine,
    recordings_config,
    speech_onset_s,
    speech_recordings,
    speech_span_s,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)

SPOKEN = ["01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "06-outbound-answered"]
VOWELS = re.compile(r"[аеёиоуыэюя]", re.IGNORECASE)


def expected_offset_s(path: Path) -> float:
    """Where «операторы» is spoken, worked out from the audio and the prompt's text alone.

    The manager's handset answers, waits a second and plays queue-periodic-announce;
    the client speaks only later, so the first sound in the recording is that
    prompt's first word. The prompt is the same sound file in every call; its
    length is read where it plays alone: the stereo call's right (manager) channel.
    Russian is spoken at a roughly even rate per syllable (one vowel each), so a
    word starts at the share of the prompt's syllables before it: «Все наши» has
    3 of its 42, so «операторы» begins 3/42 of the way through. Pauses at commas
    and a slow first word make this inexact by a few tenths of a second, well
    inside the 1.5 s allowed.
    """
    prompt = PROMPTS["queue-periodic-announce"]
    before = prompt[: prompt.index("операторы")]
    start, end = speech_span_s(stereo_recording(), channel=1)
    share = len(VOWELS.findall(before)) / len(VOWELS.findall(prompt))
    return speech_onset_s(path) + (end - start) * share


async def _transcribed(factory: async_sessionmaker[AsyncSession], root: Path, stt: CachedEngine, scenarios: list[str]) -> None:
    await write_scenarios(factory, root, scenarios)
    settings = WorkerSettings(recordings_root=root, worker_id="w1")
    outcomes = await run_worker(factory, EngineHolder(lambda: stt), settings, once=True)
    assert [o.status for o in outcomes] == ["done"] * len(outcomes)


async def test_a_word_form_never_said_finds_every_call_and_the_moment_it_was_said(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    await _transcribed(sessions, shared_dir / "recordings", stt, SPOKEN)
    async with sessions() as session:
        texts = (await session.scalars(select(TranscriptSegment.text))).all()
    said = {w.lower() for t in texts for w in re.findall(r"\w+", t)}
    # The query is a form nobody said; the prompt says «операторы» and «оператором».
    assert "операторов" not in said and "операторы" in said

    hits = await search(sessions, "операторов")
    by_call: dict[str, list[Any]] = {}
    for hit in hits:
        by_call.setdefault(hit.linkedid, []).append(hit)
    recordings = {r.linkedid: r for r in speech_recordings()}
    assert set(by_call) == set(recordings)
    for linkedid, call_hits in by_call.items():
        first = min(call_hits, key=lambda h: h.offset_s)
        assert "[операторы]" in first.snippet
        assert first.matched == "transcript" and first.recording.endswith(recordings[linkedid].path.name)
        expected = expected_offset_s(recordings[linkedid].path)
        assert abs(first.offset_s - expected) <= 1.5, (linkedid, first.offset_s, expected)


async def test_filters_and_client_matches(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine, expected: dict[str, Any]
) -> None:
    await _transcribed(sessions, shared_dir / "recordings", stt, SPOKEN)
    calls = {s: expected[s]["calls"][0] for s in SPOKEN}
    linkedids = {r.scenario: r.linkedid for r in speech_recordings()}

    async def found(query: str, **filters: Any) -> set[str]:
        return {h.linkedid for h in await search(sessions, query, SearchFilters(**filters))}

    # «скидку» finds nothing: nobody spoke of a discount in these calls.
    assert await found("скидку") == set()
    # Two words: both must be said, in any form («доступный оператор»).
    assert await found("доступный оператор") == set(linkedids.values())
    assert await found("оператор", direction="outbound") == {linkedids["06-outbound-answered"]}
    by_203 = {linkedids[s] for s, c in calls.items() if "203" in (c.get("answered_by"), c.get("placed_by"))}
    assert by_203 and await found("оператор", manager="203") == by_203
    client = calls["02-inbound-second-agent"]["client"]
    assert await found("оператор", client=client[-7:]) == {linkedids["02-inbound-second-agent"]}
    assert await found("оператор", date_to=datetime(2020, 1, 1, tzinfo=UTC)) == set()
    assert await found("оператор", min_duration_s=10_000) == set()
    assert await found("оператор", max_duration_s=10_000) == set(linkedids.values())

    # A number in the domestic 8… form finds the client's calls.
    hits = await search(sessions, "8" + client[1:])
    assert [(h.linkedid, h.matched) for h in hits] == [(linkedids["02-inbound-second-agent"], "client_number")]
    assert hits[0].recording and hits[0].recording.endswith(".wav")
    # So does the name on the client's card.
    async with sessions() as session, session.begin():
        client_id = await session.scalar(select(Call.client_id).where(Call.linkedid == linkedids["01-inbound-answered"]))
        await session.execute(update(Client).where(Client.id == client_id).values(name="ООО Ромашка"))
    hits = await search(sessions, "Ромашка")
    assert [(h.linkedid, h.matched, h.client_name) for h in hits] == [
        (linkedids["01-inbound-answered"], "client_name", "ООО Ромашка")
    ]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PBXBRIDGE_CONFIG": ""},
    )


async def test_cli_search_and_transcript_print_json_lines(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    await _transcribed(sessions, shared_dir / "recordings", stt, ["01-inbound-answered"])
    linkedid = speech_recordings()[0].linkedid

    result = _cli("search", "операторов", "--json", "--db", db_url)
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits and {h["linkedid"] for h in hits} == {linkedid}
    assert all({"offset_s", "snippet", "recording"} <= set(h) for h in hits)
    assert min(h["offset_s"] for h in hits) < 5

    result = _cli("search", "скидка", "--json", "--db", db_url)
    assert (result.returncode, result.stdout) == (1, "")

    result = _cli("transcript", linkedid, "--json", "--db", db_url)
    assert result.returncode == 0, result.stderr
    segments = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(s) for s in segments] == [{"recording", "start", "end", "speaker", "text"}] * len(segments)
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert "операторы" in segments[0]["text"].lower()
    assert "asterisk.org" in " ".join(s["text"] for s in segments).lower()

    assert _cli("transcript", "no-such-call", "--db", db_url).returncode == 1


async def _client_says(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, text: str, said: list[tuple[str, float, float]]
) -> None:
    """The first call's recording transcribed as one client segment: (word, start, end) as the engine
    would hand them over, stored through the queue like any transcript."""
    await write_scenarios(sessions, shared_dir / "recordings", ["01-inbound-answered"])
    job = await claim(sessions, "w1")
    assert job is not None
    words = tuple(Word(s, e, w) for w, s, e in said)
    segment = Segment(said[0][1], said[-1][2], text, "client", words)
    assert await complete(sessions, job, Transcript((segment,), "ru", 30.0))


async def test_discount_in_any_form_plays_from_the_word(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    said = [("Да,", 12.0, 12.3), ("а", 12.3, 12.4), ("скидку", 12.4, 12.9), ("дадите?", 12.9, 13.4)]
    await _client_says(sessions, shared_dir, "Да, а скидку дадите?", said)

    for query in ("скидка", "скидки", "СКИДКОЙ"):
        hits = await search(sessions, query)
        assert [(h.linkedid, h.offset_s, h.speaker) for h in hits] == [(speech_recordings()[0].linkedid, 12.4, "client")]
        assert hits[0].snippet == "Да, а [скидку] дадите?"
    assert await search(sessions, "наценка") == []


async def test_every_form_said_is_marked_and_play_starts_at_the_first(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # The recogniser's words need not be the text's one for one: "Да, а" came as one word.
    said = [("Да, а", 12.0, 12.4), ("скидку", 12.4, 12.9), ("дадите?", 12.9, 13.4), ("Со", 13.4, 13.6),
            ("скидкой.", 13.6, 14.2)]
    await _client_says(sessions, shared_dir, "Да, а скидку дадите? Со скидкой.", said)

    (hit,) = await search(sessions, "скидки")
    assert (hit.offset_s, hit.snippet) == (12.4, "Да, а [скидку] дадите? Со [скидкой].")


def test_a_hit_whose_words_do_not_follow_its_text_plays_from_the_first_word_said() -> None:
    # Stored lemmas give the marks; where the recogniser's words are out of step with the text
    # (a word the text lacks), play starts at the first of them that is a query word all the same.
    text = "Да, а скидку дадите?"
    words = [{"start": 11.0, "word": "Алло"}, {"start": 12.0, "word": "Да,"}, {"start": 12.3, "word": "а"},
             {"start": 12.4, "word": "скидку"}, {"start": 12.9, "word": "дадите?"}]
    marks = _Marks(_wanted("скидка"))
    assert _locate(words, text, marks, 10.0, lemmatise(text)) == (12.4, "Да, а [скидку] дадите?")
    # Lemmas that do not line up with the text (stored by another version) are not trusted.
    assert _locate(words, text, marks, 10.0, "да а") == (12.4, "Да, а [скидку] дадите?")


async def test_cli_backfill_transcribes_with_a_progress_bar(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    root = shared_dir / "recordings"
    writer = CallWriter(sessions, recordings_config(root))  # written before transcription was set up
    for call in replay_trace(shared_dir / "01-inbound-answered.ami", tracker_settings(PbxConfig())):
        await writer.write(call)

    result = _cli("transcribe", "--all", "--db", db_url, "--recordings", str(root))
    assert result.returncode == 0, result.stderr
    # tqdm's bar: count, rate and time left.
    assert "1/1" in result.stderr and "rec" in result.stderr and "100%" in result.stderr
    hits = await search(sessions, "операторов")
    assert {h.linkedid for h in hits} == {speech_recordings()[0].linkedid}


# Calls on two days (2026-11-26 and 2026-12-07, Moscow time), both directions, three managers.
ASKED = ["01-inbound-answered", "02-inbound-second-agent", "06-outbound-answered", "14-attended-transfer"]
DISCOUNT = "Да, а скидку дадите?"


async def _everyone_asks_for_a_discount(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, expected: dict[str, Any]
) -> dict[str, str]:
    """Every recording of the ASKED calls transcribed as the client asking for a discount; scenario -> linkedid."""
    await write_scenarios(sessions, shared_dir / "recordings", ASKED)
    words = (Word(12.0, 12.3, "Да,"), Word(12.3, 12.4, "а"), Word(12.4, 12.9, "скидку"), Word(12.9, 13.4, "дадите?"))
    transcript = Transcript((Segment(12.0, 13.4, DISCOUNT, "client", words),), "ru", 30.0)
    while (job := await claim(sessions, "w1")) is not None:
        assert await complete(sessions, job, transcript)
    linkedids: dict[str, str] = {}
    async with sessions() as session:
        for scenario in ASKED:
            (call,) = expected[scenario]["calls"]
            linkedids[scenario] = (
                await session.scalars(select(Call.linkedid).where(Call.client_number == "+" + call["client"]))
            ).one()
    return linkedids


def _total_s(call: dict[str, Any]) -> tuple[float, float]:
    """The scripted bounds of a call's whole length (wait + talk)."""
    return call["wait_s"][0] + call["talk_s"][0], call["wait_s"][1] + call["talk_s"][1]


async def test_cli_search_filters_and_its_table(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    shared_dir: Path,
    expected: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PBXBRIDGE_CONFIG", raising=False)
    linkedids = await _everyone_asks_for_a_discount(sessions, shared_dir, expected)
    scripted = {s: expected[s]["calls"][0] for s in ASKED}

    async def run(*args: str) -> tuple[int, list[str]]:
        """`pbxbridge search скидка ARGS` as typed (in a thread: the command runs its own event loop)."""
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["search", "скидка", "--db", db_url, *args])
        return code, capsys.readouterr().out.splitlines()

    async def found(*args: str) -> set[str]:
        """The scenarios whose calls the search printed, as JSON lines."""
        code, lines = await run("--json", *args)
        hits = {json.loads(line)["linkedid"] for line in lines}
        assert code == (0 if hits else 1), args
        return {s for s, linkedid in linkedids.items() if linkedid in hits}

    assert await found() == set(ASKED)
    # A manager's calls: those he answered or placed, and those he ended up with after a transfer.
    for ext in ("202", "203", "205"):
        mine = {
            s for s, c in scripted.items() if ext in (c.get("answered_by"), c.get("placed_by"), c.get("final_agent"))
        }
        assert mine and await found("--manager", ext) == mine, ext
    for direction in ("inbound", "outbound"):
        assert await found("--direction", direction) == {s for s, c in scripted.items() if c["direction"] == direction}
    assert await found("--status", "answered") == set(ASKED)
    assert await found("--status", "abandoned") == set()
    client = scripted["02-inbound-second-agent"]["client"]
    assert await found("--client", "8" + client[1:]) == {"02-inbound-second-agent"}

    # A day is the department's local day (Europe/Moscow) and --to takes it in whole, as on the
    # journal page and in `pbxbridge kpi`.
    zone = ZoneInfo("Europe/Moscow")
    days = {s: datetime.fromtimestamp(expected[s]["started"], zone).date().isoformat() for s in ASKED}
    for day in sorted(set(days.values())):
        on_day = {s for s, d in days.items() if d == day}
        assert await found("--from", day, "--to", day) == on_day, day
        assert await found("--to", day) == {s for s, d in days.items() if d <= day}, day
        assert await found("--from", day) == {s for s, d in days.items() if d >= day}, day

    # Length: a threshold that falls between the scripted bounds of the first day's calls.
    first_day = min(days.values())
    timed = {s: _total_s(scripted[s]) for s, d in days.items() if d == first_day}
    shortest = min(timed, key=lambda s: timed[s][1])
    threshold = (timed[shortest][1] + min(low for s, (low, _) in timed.items() if s != shortest)) / 2
    assert all(high < threshold or low > threshold for low, high in timed.values())
    longer = {s for s, (low, _) in timed.items() if low > threshold}
    assert await found("--to", first_day, "--min-duration", str(threshold)) == longer
    assert await found("--to", first_day, "--max-duration", str(threshold)) == set(timed) - longer

    # The table: newest call first, one line per hit with when, which call, whose, who, where in
    # the recording to listen, and the words around the match.
    first_client = select(Call.client_id).where(Call.linkedid == linkedids["01-inbound-answered"]).scalar_subquery()
    async with sessions() as session, session.begin():
        await session.execute(update(Client).where(Client.id == first_client).values(name="ООО Ромашка"))
    code, lines = await run("--to", first_day)
    assert code == 0

    def start_of(scenario: str) -> float:
        return float(expected[scenario]["started"])

    by_start = sorted((s for s, d in days.items() if d == first_day), key=start_of, reverse=True)
    assert [line.split()[1] for line in lines] == [linkedids[s] for s in by_start]
    for line, scenario in zip(lines, by_start, strict=True):
        call = scripted[scenario]
        started, linkedid, rest = line.split("  ", 2)
        assert abs(datetime.fromisoformat(started).timestamp() - start_of(scenario)) < 5
        who = "ООО Ромашка" if scenario == "01-inbound-answered" else "+" + call["client"]
        manager = call.get("answered_by") or call.get("placed_by")
        assert rest == f"{who}  {manager}  @12.4s  Да, а [скидку] дадите?", line
    code, lines = await run("--limit", "1")
    assert code == 0 and [line.split()[1] for line in lines] == [linkedids[max(ASKED, key=start_of)]]
    # Nothing found: nothing printed, and the exit status says so.
    assert await run("--direction", "internal") == (1, [])
