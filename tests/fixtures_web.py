"""Web test data: the captured calls replayed into a database, one real transcript, users of each role."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.calls.replay import replay_traces
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import Config, DatabaseConfig, RecordingsConfig, WebConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.service import KpiService
from pbxbridge.transcription.queue import claim, complete, enqueue
from pbxbridge.transcription.transcript import Segment, Transcript, Word
from pbxbridge.web.users import add_user

PASSWORD = "correct horse battery"
# username -> (role, extension)
USERS: dict[str, tuple[str, str | None]] = {
    "olga": ("head", None),
    "ivan": ("manager", "203"),  # answered 01-inbound-answered
    "petr": ("manager", "202"),  # answered 02-inbound-second-agent
    "sergey": ("ops", None),
}
# The first scenario's caller; manager 203 answered and the call was recorded with speech.
IVAN_CLIENT = "+79161110001"
PETR_CLIENT = "+79161110002"
TRANSCRIBED_FILE = "in-74951234567-79161110001-20261126-200409-1795723449.4.wav"


def local_lab_traces(shared_dir: Path) -> list[Path]:
    """Every Local-lab and PJSIP-lab capture, in scenario order."""
    return sorted(shared_dir.glob("[0-9][0-9]-*.ami")) + sorted(shared_dir.glob("pjsip-*.ami"))


def web_config(db_url: str, shared_dir: Path, **web: Any) -> Config:
    """Settings pointing at the test database and the captured recordings."""
    return Config(
        database=DatabaseConfig(url=db_url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        # English unless a test asks otherwise: the API's messages are asserted as written.
        web=WebConfig(secret_key="test-secret-key-0123456789", **{"language": "en", **web}),
    )


def _transcript_to_json(transcript: Transcript) -> list[dict[str, Any]]:
    return [
        {"start": s.start, "end": s.end, "text": s.text, "speaker": s.speaker,
         "words": [[w.start, w.end, w.word] for w in s.words]}
        for s in transcript.segments
    ]


def _transcript_from_json(data: list[dict[str, Any]]) -> Transcript:
    return Transcript(tuple(
        Segment(s["start"], s["end"], s["text"], s["speaker"], tuple(Word(*w) for w in s["words"]))
        for s in data
    ), "ru")


@pytest.fixture(scope="session")
def whisper_transcript(request: pytest.FixtureRequest, shared_dir: Path) -> Transcript:
    """The bundled Whisper model's transcript of one recorded call.

    The suite's one engine transcribes each recording at most once per run.
    """
    from tests.fixtures_transcription import shared_engine

    path = next((shared_dir / "recordings").rglob(TRANSCRIBED_FILE))
    return shared_engine().transcribe(path)


@dataclass(slots=True)
class WebData:
    """Ids the tests look things up by."""

    config: Config
    ivan_call_id: int
    petr_call_id: int
    ivan_recording_id: int
    ivan_client_id: int
    petr_client_id: int
    recording_size: int
    calls: int


async def populate(config: Config, shared_dir: Path, transcript: Transcript) -> WebData:
    """Replay every capture into the journal (with KPI figures), transcribe one call, add users."""
    calls = await replay_traces(local_lab_traces(shared_dir), config)
    engine = make_engine(config.database.url)
    try:
        factory = session_factory(engine)
        kpi = KpiService.from_config(config)
        writer = CallWriter(factory, config, after_write=[kpi.record_written])
        for call in calls:
            await writer.write(call)
        async with factory() as db:
            ivan_call = (await db.execute(
                select(Call).where(Call.client_number == IVAN_CLIENT, Call.direction == "inbound")
            )).scalar_one()
            petr_call = (await db.execute(
                select(Call).where(Call.client_number == PETR_CLIENT, Call.direction == "inbound")
            )).scalar_one()
            recording = (await db.execute(
                select(Recording).where(Recording.call_id == ivan_call.id, Recording.status == "ok")
            )).scalar_one()
        async with factory() as db, db.begin():
            await enqueue(db, [recording.id])
        job = await claim(factory, "web-tests")
        assert job is not None and job.recording_id == recording.id
        assert await complete(factory, job, transcript)
        async with factory() as db, db.begin():
            for username, (role, ext) in USERS.items():
                await add_user(db, username, PASSWORD, role, ext)
        return WebData(
            config=config,
            ivan_call_id=ivan_call.id,
            petr_call_id=petr_call.id,
            ivan_recording_id=recording.id,
            ivan_client_id=ivan_call.client_id,
            petr_client_id=petr_call.client_id,
            recording_size=int(recording.size_bytes or 0),
            calls=len(calls),
        )
    finally:
        await engine.dispose()


def transcript_json(transcript: Transcript) -> str:
    """For debugging a failing search: the transcript as text."""
    return json.dumps(_transcript_to_json(transcript), ensure_ascii=False)


@pytest.fixture(scope="session")
def fast_password_hashing() -> None:
    """argon2 with small parameters: the real hash, verified for real, without 0.5 s per sign-in."""
    from argon2 import PasswordHasher

    from pbxbridge.web.users import use_hasher

    use_hasher(PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


class ApiClient:
    """An HTTP client that keeps cookies and echoes the CSRF token, as the pages' script does."""

    def __init__(self, base_url: str) -> None:
        import aiohttp

        self.base_url = base_url
        self.http = aiohttp.ClientSession(base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))

    @property
    def csrf(self) -> str:
        """The pbxb_csrf cookie's value."""
        for cookie in self.http.cookie_jar:
            if cookie.key == "pbxb_csrf":
                return cookie.value
        return ""

    async def prime(self) -> None:
        """Any first request: the answer sets the CSRF cookie."""
        async with self.http.get("/healthz") as response:
            await response.read()

    async def login(self, username: str, password: str = PASSWORD) -> Any:
        """Sign in through the API; returns the response (read)."""
        if not self.csrf:
            await self.prime()
        async with self.http.post(
            "/api/login", json={"username": username, "password": password}, headers={"X-CSRF-Token": self.csrf}
        ) as response:
            await response.read()
            return response

    def send(self, method: str, path: str, *, csrf: bool = True, **kwargs: Any) -> Any:
        """A request context manager with the CSRF header (unless csrf=False)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.request(method, path, headers=headers, allow_redirects=False, **kwargs)

    async def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON body)."""
        async with self.send(method, path, **kwargs) as response:
            return response.status, await response.json(content_type=None)

    async def close(self) -> None:
        await self.http.close()


class PopulatedTemplates:
    """One populated database per backend, copied for each test: replaying every call takes seconds."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data: dict[str, WebData] = {}
        self.pg_templates: list[tuple[str, str]] = []  # (admin url, template name)

    async def fill(self, config: Config, shared_dir: Path, transcript: Transcript) -> WebData:
        """The test's database (already migrated) holding the test data; returns its ids."""
        from dataclasses import replace

        from sqlalchemy.engine import make_url

        url = make_url(config.database.url)
        backend = url.get_backend_name()
        if backend == "sqlite":
            target = Path(url.database or "")
            template = self.directory / "populated.sqlite3"
            if backend not in self.data:
                self.data[backend] = await populate(config, shared_dir, transcript)
                template.write_bytes(target.read_bytes())
            else:
                for suffix in ("-wal", "-shm"):
                    Path(str(target) + suffix).unlink(missing_ok=True)
                target.write_bytes(template.read_bytes())
            return replace(self.data[backend], config=config)
        import asyncpg

        name = url.database
        # One name per test run: two runs on one server must not share it.
        template_name = f"pbxb_web_tpl_{os.getpid()}"
        admin = dict(host=url.host, port=url.port or 5432, user=url.username, database="test")
        if backend not in self.data:
            self.data[backend] = await populate(config, shared_dir, transcript)
            conn = await asyncpg.connect(**admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{template_name}"')
                await conn.execute(f'CREATE DATABASE "{template_name}" TEMPLATE "{name}"')
            finally:
                await conn.close()
            self.pg_templates.append((json.dumps(admin), template_name))
        else:
            conn = await asyncpg.connect(**admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
            finally:
                await conn.close()
        return replace(self.data[backend], config=config)

    async def drop(self) -> None:
        """Remove the PostgreSQL template."""
        import asyncpg

        for admin, name in self.pg_templates:
            conn = await asyncpg.connect(**json.loads(admin))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@pytest.fixture(scope="session")
def populated_templates(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's populated databases to copy from."""
    import asyncio

    templates = PopulatedTemplates(tmp_path_factory.mktemp("web-template"))
    yield templates
    asyncio.run(templates.drop())
