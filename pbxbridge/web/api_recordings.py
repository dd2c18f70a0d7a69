"""Recordings' audio, by id only: the file's path comes from the database, never from the request.

Who listened is written to the audit log when playback starts: the player reports it
(``POST .../listen``) on its first play. The audio it streams, the ranges it asks for while
seeking and the whole file the waveform is drawn from are not listening, and are not written.
A file fetched outside the pages (an address opened by hand, a script) is written as listened
at once, since no play will be reported for it; a download is written as a download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Manager
from pbxbridge.recordings.kinds import kind_root
from pbxbridge.web.access import CALL_ROLES, load_call, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.context import WebContext, ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.recording_names import content_disposition, recording_file_name
from pbxbridge.web.users import SignedInUser

routes = web.RouteTableDef()

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "gsm": "audio/x-gsm"}
# A file fetched outside the player: one "listen" entry per user and recording in this span,
# however many range requests the program makes.
LISTEN_DEDUP_S = 600.0
# The player's report: one entry per start of listening; a second report this soon (a second
# tab, a double click) is the same listening.
PLAYER_LISTEN_DEDUP_S = 30.0
# What a browser says a request is for (Sec-Fetch-Dest; a page's script cannot forge it):
# the media element streaming, or the page's own script fetching the file to draw its waveform.
PLAYER_FETCHES = frozenset({"audio", "video", "track", "empty"})


def recording_file(root: Path, relative: str) -> Path | None:
    """The recording's file, if it is a file inside its root (recordings or voicemail)."""
    if "\x00" in relative:
        # No file system call takes a NUL; a row holding one is not a file of ours.
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


@dataclass(frozen=True, slots=True)
class _Playable:
    recording: Recording
    call: Call
    path: Path
    manager_name: str | None


async def _recording(request: web.Request, user: SignedInUser) -> _Playable:
    """The recording the URL names, its call, its file and who talked, if this user may hear it."""
    context = ctx(request)
    recording_id = int(request.match_info["recording_id"])
    async with context.sessions() as db:
        rec = await db.get(Recording, recording_id)
        if rec is None:
            raise api_error(404, _(request, "no such recording"))
        call = await load_call(db, user, rec.call_id)
        if rec.status != "ok" or not rec.path:
            raise api_error(404, _(request, "this recording holds no sound"))
        path = recording_file(kind_root(rec.kind, context.config.recordings), rec.path)
        if path is None:
            raise api_error(404, _(request, "the recording's file is not under its root"))
        manager = call.manager or call.final_manager
        manager_name = await db.scalar(select(Manager.name).where(Manager.extension == manager)) if manager else None
    return _Playable(rec, call, path, manager_name)


def _first_in(context: WebContext, user: SignedInUser, recording_id: int, span: float) -> bool:
    """Whether this is the first listen of this user and recording within ``span`` seconds (and note it)."""
    key = (user.id, recording_id)
    now = context.clock()
    if now - context.listens.get(key, -span) < span:
        return False
    context.listens[key] = now
    return True


def _resumed(request: web.Request) -> bool:
    """Whether the request asks for a part after the file's start (the rest of a download)."""
    wanted = request.headers.get("Range", "").replace(" ", "")
    return bool(wanted) and not wanted.startswith("bytes=0-")


@routes.get("/api/recordings/{recording_id:\\d+}/audio")
async def audio(request: web.Request) -> web.StreamResponse:
    """The recording's audio; honours Range (206 Partial Content) for seeking; ``download=1`` saves it."""
    user = require_user(request, *CALL_ROLES)
    context = ctx(request)
    found = await _recording(request, user)
    rec, call, path = found.recording, found.call, found.path
    kind = (rec.format or path.suffix.lstrip(".")).lower()
    download = request.query.get("download", "") not in ("", "0")
    headers = {"Cache-Control": "private, max-age=3600"}
    if download:
        full, fallback = recording_file_name(
            number=call.client_number or call.callee,
            started_at=call.started_at,
            zone=context.config.kpi.timezone,
            manager_extension=call.manager or call.final_manager,
            manager_name=found.manager_name,
            suffix=kind,
        )
        headers["Content-Disposition"] = content_disposition(full, fallback)
        # A resumed download asks for the rest with a Range: that is the same download.
        if not _resumed(request):
            async with write_session(context) as db:
                record(db, request, user, "download", f"recording:{rec.id}", call_id=rec.call_id, file=full)
    elif request.headers.get("Sec-Fetch-Dest", "") not in PLAYER_FETCHES and _first_in(
        context, user, rec.id, LISTEN_DEDUP_S
    ):
        async with write_session(context) as db:
            record(db, request, user, "listen", f"recording:{rec.id}", call_id=rec.call_id, source="file")
    response = web.FileResponse(path, headers=headers)
    response.content_type = CONTENT_TYPES.get(kind, "application/octet-stream")
    return response


@routes.post("/api/recordings/{recording_id:\\d+}/listen")
async def listen(request: web.Request) -> web.Response:
    """The player started playing this recording: written to the audit log as listened."""
    user = require_user(request, *CALL_ROLES)
    context = ctx(request)
    rec = (await _recording(request, user)).recording
    if _first_in(context, user, rec.id, PLAYER_LISTEN_DEDUP_S):
        async with write_session(context) as db:
            record(db, request, user, "listen", f"recording:{rec.id}", call_id=rec.call_id, source="player")
    return web.Response(status=204)
