"""Recordings' audio, by id only: the file's path comes from the database, never from the request."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from pbxbridge.calls.tables import Recording
from pbxbridge.recordings.kinds import kind_root
from pbxbridge.web.access import CALL_ROLES, load_call, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error

routes = web.RouteTableDef()

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "gsm": "audio/x-gsm"}
# One "listened" entry per user and recording in this span, however many range requests a player makes.
LISTEN_DEDUP_S = 600.0


def recording_file(root: Path, relative: str) -> Path | None:
    """The recording's file, if it is a file inside its root (recordings or voicemail)."""
    if "\x00" in relative:
        # No file system call takes a NUL; a row holding one is not a file of ours.
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return None
    return path


@routes.get("/api/recordings/{recording_id:\\d+}/audio")
async def audio(request: web.Request) -> web.StreamResponse:
    """The recording's audio; honours Range (206 Partial Content) for seeking."""
    user = require_user(request, *CALL_ROLES)
    context = ctx(request)
    recording_id = int(request.match_info["recording_id"])
    async with context.sessions() as db:
        rec = await db.get(Recording, recording_id)
        if rec is None:
            raise api_error(404, "no such recording")
        await load_call(db, user, rec.call_id)
        if rec.status != "ok" or not rec.path:
            raise api_error(404, "this recording holds no sound")
        path = recording_file(kind_root(rec.kind, context.config.recordings), rec.path)
        if path is None:
            raise api_error(404, "the recording's file is not under its root")
    key = (user.id, recording_id)
    now = context.clock()
    if now - context.listens.get(key, -LISTEN_DEDUP_S) >= LISTEN_DEDUP_S:
        context.listens[key] = now
        async with write_session(context) as db:
            record(db, request, user, "listen", f"recording:{recording_id}", call_id=rec.call_id)
    response = web.FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
    kind = (rec.format or path.suffix.lstrip(".")).lower()
    response.content_type = CONTENT_TYPES.get(kind, "application/octet-stream")
    return response
