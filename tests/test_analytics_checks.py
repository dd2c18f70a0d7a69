"""Every transcribed call checked against the sales script, on real transcripts of the shared recordings.

The manager's side of each Local-lab call says queue-periodic-announce («Все наши
операторы заняты. Пожалуйста, оставайтесь на линии, и Ваш звонок будет обслужен
первым доступным оператором.»), then the client says demo-moreinfo. Both sides
share one channel, so nobody's side is known. The bundled model transcribes them.
"""

from __future__ import annotations

import asyncio
import json
import re
import wave
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.daemon import Analyst
from pbxbridge.analytics.store import call_checks, job_progress, queue_recheck, set_checklist
from pbxbridge.cli.main import main
from pbxbridge.config import Config
from pbxbridge.hub import Hub
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_ami import wait_until
from tests.fixtures_transcription import (
    PROMPTS,
    CachedEngine,
    speech_onset_s,
    speech_recordings,
    speech_span_s,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)

SPOKEN = ["01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "06-outbound-answered"]
VOWELS = re.compile(r"[аеёиоуыэюя]", re.IGNORECASE)

SCRIPT = {
    "name": "Входящий и исходящий",
    "items": [
        # Said as «ваш звонок будет обслужен»: the phrase is in dictionary form, a word apart.
        {"title": "Пообещал обслужить", "phrases": ["ваш звонок обслужить"], "side": "manager", "within_s": 20},
        {"title": "Предложил скидку", "phrases": ["скидка", "дисконт"], "side": "manager"},
        {"title": "Не просил ждать", "phrases": ["оставаться на линии"], "must": False},
        {"title": "Рассказал о дополнительной информации сразу", "phrases": ["дополнительная информация"], "within_s": 5},
        {"title": "Дополнительная информация в конце", "phrases": ["дополнительная информация"], "last_s": 15},
    ],
}


def moment_in_prompt_s(path: Path, word: str) -> float:
    """Where ``word`` of the manager's prompt is spoken, from the audio and the prompt's text alone.

    The first sound in these recordings is the prompt's first word; the prompt's
    length is read where it plays alone (the stereo call's manager channel), and a
    word starts at the share of the prompt's syllables (vowels) before it.
    """
    prompt = PROMPTS["queue-periodic-announce"]
    start, end = speech_span_s(stereo_recording(), channel=1)
    share = len(VOWELS.findall(prompt[: prompt.index(word)])) / len(VOWELS.findall(prompt))
    return speech_onset_s(path) + (end - start) * share


def _served_hub(sessions: async_sessionmaker[AsyncSession]) -> Hub:
    hub = Hub(Config())

    async def no_pbx(pbx: str, action: dict[str, str], as_list: bool | None) -> None:
        raise ConnectionError(pbx)

    async def no_writer(until: float) -> None:
        return None

    hub.serve(
        sessions=sessions, write_sessions=sessions, send_action=no_pbx, calls_in_progress=list,
        pbx_clock=lambda _pbx: None, calls_up=lambda: 0, database_turn=asyncio.Lock,
        writer_first=no_writer,
    )
    return hub


def _items(found: dict[str, Any], checklist: str) -> dict[str, dict[str, Any]]:
    (entry,) = [c for c in found["checklists"] if c["checklist"] == checklist]
    return {item["title"]: item for item in entry["items"]}


async def test_each_call_is_checked_when_its_transcript_is_stored_and_again_when_the_script_changes(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine, db_url: str,
    capsys: Any,
) -> None:
    async with sessions() as session, session.begin():
        await set_checklist(session, parse_checklist(SCRIPT))
    root = shared_dir / "recordings"
    await write_scenarios(sessions, root, SPOKEN)
    hub = _served_hub(sessions)
    analyst = Analyst(hub, poll_s=0.05)
    hub.on_transcript_ready(analyst.transcript_ready)
    settings = WorkerSettings(recordings_root=root, worker_id="w1")
    outcomes = await run_worker(sessions, EngineHolder(lambda: stt), settings, once=True)
    assert outcomes and all(o.status == "done" for o in outcomes)
    # What the daemon's watcher does for each transcript a worker stored.
    for outcome in outcomes:
        hub.transcript_ready(outcome.job.recording_id)
    recordings = {r.linkedid: r for r in speech_recordings() if r.scenario in SPOKEN}
    assert len(recordings) == len(SPOKEN)

    async def checked() -> dict[str, dict[str, Any]]:
        async with sessions() as session:
            return {lid: await call_checks(session, lid) or {} for lid in recordings}

    for _ in range(200):
        found = await checked()
        if all(f["checklists"] for f in found.values()):
            break
        await asyncio.sleep(0.05)
    for linkedid, recording in recordings.items():
        items = _items(found[linkedid], SCRIPT["name"])
        said = items["Пообещал обслужить"]
        assert said["passed"] and said["reason"] is None
        assert said["evidence"]["words"].lower() == "ваш звонок будет обслужен"
        expected = moment_in_prompt_s(recording.path, "Ваш")
        assert abs(said["evidence"]["at_s"] - expected) <= 1.5, (linkedid, said["evidence"], expected)
        # One channel: nobody's side is known, the item was judged on the whole text and says so.
        assert said["side_unknown"] is True and said["evidence"]["side"] is None

        # One channel: who talked how much is not known, so there are no figures (not zeros).
        assert found[linkedid]["conversation"] is None

        never = items["Предложил скидку"]
        assert not never["passed"] and never["reason"] == "not_said" and never["evidence"] is None

        stop = items["Не просил ждать"]
        assert not stop["passed"] and stop["reason"] == "stop_phrase_said"
        assert stop["evidence"]["words"].lower() == "оставайтесь на линии"
        assert abs(stop["evidence"]["at_s"] - moment_in_prompt_s(recording.path, "оставайтесь")) <= 1.5
        assert stop["side_unknown"] is False  # a side-free item needs no side

        # The client's prompt starts after the manager's (over 10 s in): not in the first 5 s.
        assert not items["Рассказал о дополнительной информации сразу"]["passed"]
        # «Дополнительная информация на сайте www.asterisk.org» takes ~5 s and ends the speech:
        # within the last 15 s only where the recording ends soon after the sound does.
        end_of_sound = speech_span_s(recording.path)[1]
        said_before_end = _wav_s(recording.path) - (end_of_sound - 5.0)
        assert items["Дополнительная информация в конце"]["passed"] == (said_before_end <= 15), (linkedid, said_before_end)
    # Passed: the promise, and the closing words where they came at the end; never the rest.
    assert {f["checklists"][0]["items_passed"] for f in found.values()} <= {1, 2}

    # The head adds an item: every past call is re-checked in the background, with progress.
    linux = {"title": "Упомянул Linux", "phrases": ["линукс", "linux"], "side": "client"}
    changed = {**SCRIPT, "items": [*SCRIPT["items"], linux]}
    async with sessions() as session, session.begin():
        stored, was_changed = await set_checklist(session, parse_checklist(changed))
        assert was_changed and stored.version == 2
        job = await queue_recheck(session, "checklist set")
    await analyst.start()
    try:
        await wait_until(lambda: analyst.jobs_run >= 1, timeout=60)
    finally:
        await analyst.stop()
    async with sessions() as session:
        progress = await job_progress(session, job)
    assert progress is not None and progress["status"] == "done"
    assert progress["total"] == progress["done"] == len(SPOKEN)
    found = await checked()
    for linkedid in recordings:
        entry = found[linkedid]["checklists"][0]
        assert entry["version"] == 2 and entry["items_total"] == 6
        linux = _items(found[linkedid], SCRIPT["name"])["Упомянул Linux"]
        assert linux["passed"] and linux["side_unknown"] and linux["evidence"]["words"].lower() == "linux"

    # The command line prints the same, item by item.
    some = next(iter(recordings))
    assert await asyncio.to_thread(main, ["checks", some, "--json", "--db", db_url]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert _items(printed, SCRIPT["name"]) == _items(found[some], SCRIPT["name"])
    assert await asyncio.to_thread(main, ["checks", some, "--db", db_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  FAIL Предложил скидку: not said [one channel: judged on the whole text]" in lines
    assert any(line.startswith("  FAIL Не просил ждать: stop phrase said at ") and "«оставайтесь на линии»" in line
               for line in lines), lines


def _wav_s(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()
