"""A recording as the player and the audit log see it: listening is written when playback starts
(not when the page loads or seeks the audio), a download carries a name a person can file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from sqlalchemy import update

from pbxbridge.clients.tables import Manager
from pbxbridge.web.recording_names import content_disposition, recording_file_name
from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    IVAN_CLIENT,
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)


async def test_loading_and_seeking_in_the_player_is_not_listening_pressing_play_is(card_site: CardSite) -> None:
    ivan = await card_site.signed_in("ivan")
    rec = card_site.data.ivan_recording_id
    url = f"/api/recordings/{rec}/audio"
    # What Chromium sends for <audio preload>, for seeking in it, and for the waveform's fetch.
    for dest, ranges in (("audio", ["bytes=0-", "bytes=50000-", "bytes=120000-"]), ("empty", [None])):
        for wanted in ranges:
            headers = {"Sec-Fetch-Dest": dest, **({"Range": wanted} if wanted else {})}
            async with ivan.send("GET", url, headers=headers) as response:
                assert response.status in (200, 206)
                await response.read()
    assert await card_site.audit("listen") == []

    async with ivan.send("POST", f"/api/recordings/{rec}/listen") as started:
        assert started.status == 204
    # Pause and play again, a second tab: the same listening.
    async with ivan.send("POST", f"/api/recordings/{rec}/listen") as again:
        assert again.status == 204
    (entry,) = await card_site.audit("listen")
    assert (entry["username"], entry["target"]) == ("ivan", f"recording:{rec}")
    assert entry["details"]["call_id"] == card_site.data.ivan_call_id

    # Half an hour later he plays it again: that is another listening.
    card_site.context.listens.clear()
    async with ivan.send("POST", f"/api/recordings/{rec}/listen") as later:
        assert later.status == 204
    assert len(await card_site.audit("listen")) == 2


async def test_listening_is_reported_only_by_who_may_hear_the_call(card_site: CardSite) -> None:
    rec = card_site.data.ivan_recording_id
    petr = await card_site.signed_in("petr")
    async with petr.send("POST", f"/api/recordings/{rec}/listen") as refused:
        assert refused.status == 403
    ops = await card_site.signed_in("sergey")
    async with ops.send("POST", f"/api/recordings/{rec}/listen") as refused:
        assert refused.status == 403
    ivan = await card_site.signed_in("ivan")
    async with ivan.send("POST", f"/api/recordings/{rec}/listen", csrf=False) as forged:
        assert forged.status == 403
    async with ivan.send("POST", "/api/recordings/999999/listen") as missing:
        assert missing.status == 404
    assert await card_site.audit("listen") == []


async def test_a_download_is_named_client_day_time_manager_and_written_as_a_download(
    card_site: CardSite, shared_dir: Path
) -> None:
    async with card_site.sessions() as db, db.begin():
        await db.execute(update(Manager).where(Manager.extension == "203").values(name="Иван Петров"))
    ivan = await card_site.signed_in("ivan")
    _, call = await ivan.json("GET", f"/api/calls/{card_site.data.ivan_call_id}")
    (recording,) = call["playable"]
    started = datetime.fromisoformat(call["started_at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Moscow"))
    day, time = started.strftime("%d.%m.%Y"), started.strftime("%H-%M")

    async with ivan.send("GET", recording["audio_url"] + "?download=1") as response:
        assert response.status == 200
        disposition = response.headers["Content-Disposition"]
        body = await response.read()
    assert body == (shared_dir / "recordings" / recording["path"]).read_bytes()
    assert disposition.startswith("attachment;")
    # Browsers that read RFC 6266 get the manager's name; the rest an ASCII name with the extension.
    assert f'filename="{IVAN_CLIENT}_{day}_{time}_203.wav"' in disposition
    full = unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert full == f"{IVAN_CLIENT}_{day}_{time}_Иван Петров.wav"

    (entry,) = await card_site.audit("download")
    assert (entry["username"], entry["target"]) == ("ivan", f"recording:{recording['id']}")
    assert entry["details"]["file"] == full
    assert await card_site.audit("listen") == []


async def test_a_file_opened_outside_the_pages_is_written_as_listened_once(card_site: CardSite) -> None:
    ivan = await card_site.signed_in("ivan")
    url = f"/api/recordings/{card_site.data.ivan_recording_id}/audio"
    for wanted in ("bytes=0-999", "bytes=1000-1999"):
        async with ivan.send("GET", url, headers={"Range": wanted, "Sec-Fetch-Dest": "document"}) as response:
            assert response.status == 206
    assert len(await card_site.audit("listen")) == 1


def test_file_names_hold_nothing_a_file_system_or_a_header_refuses() -> None:
    at = datetime.fromisoformat("2026-11-26T21:30:00+00:00")  # 00:30 the next day in Moscow
    full, fallback = recording_file_name(number="+74951234567", started_at=at, zone="Europe/Moscow",
                                         manager_extension="201", manager_name='Анна "Босс" / Ко: 1?', suffix="WAV")
    assert full == "+74951234567_27.11.2026_00-30_Анна -Босс- - Ко- 1.wav"
    assert fallback == "+74951234567_27.11.2026_00-30_201.wav"
    header = content_disposition(full, fallback)
    assert header.isascii() and "\n" not in header and header.count('"') == 2

    full, fallback = recording_file_name(number=None, started_at=at, zone="Europe/Moscow",
                                         manager_extension=None, manager_name=None, suffix="")
    assert (full, fallback) == ("call_27.11.2026_00-30.wav", "call_27.11.2026_00-30.wav")
    # A name in Latin letters is its own ASCII name; a path in a number is no path.
    full, fallback = recording_file_name(number="../../etc", started_at=at, zone="Europe/Moscow",
                                         manager_extension="202", manager_name="Petr Smirnov", suffix="mp3")
    assert full == fallback == "etc_27.11.2026_00-30_Petr Smirnov.mp3"
