"""Find the voicemail message a caller left, under the voicemail root.

app_voicemail tells which file it wrote: ``VM_MESSAGEFILE`` on the caller's
channel, a path without extension such as
``/var/spool/asterisk/voicemail/<context>/<mailbox>/INBOX/msg0000``.
pbxbridge reads the PBX's voicemail spool where it is mounted or synced (the
``recordings.voicemail_root`` setting), so the part after ``voicemail/`` is
looked up there first, as ``.wav``, ``.WAV`` and ``.gsm`` in turn.

Messages do not stay put: a manager who listens moves the message to ``Old``
(renumbered), one who deletes it removes it. When the named file is gone, the
mailbox's folders are searched for the message's own information file
(``msgNNNN.txt``), whose ``callerid`` and ``origtime`` tie it to the call: the
same caller, left between the call's start and its end.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

from pbxbridge.recordings.kinds import RecordingKind
from pbxbridge.recordings.locate import (
    LocatedRecording,
    RecordingStatus,
    locate_recording,
)

# Sound formats app_voicemail writes, in the order pbxbridge plays them best.
_FORMATS = (".wav", ".WAV", ".gsm")
# Between Asterisk stamping the message and the call's last hangup event.
_ORIGTIME_SLACK_S = 5.0
_SPOOL_TAIL = re.compile(r"(?:^|/)voicemail/(?P<tail>[^/]+/[^/]+/[^/]+/msg\d+)$")
# A mailbox has a handful of folders; a hostile spool must not make the writer walk forever.
_MAX_INFO_FILES = 2000


def locate_voicemail(
    message_file: str,
    root: Path | str,
    *,
    caller: str | None,
    started_at: float,
    ended_at: float,
) -> LocatedRecording:
    """The message's sound file under ``root``: ok, empty, or missing when nowhere to be found."""
    root = Path(root)
    tail = _spool_tail(message_file)
    if tail is not None:
        for fmt in _FORMATS:
            relative = tail.as_posix() + fmt
            if (root / relative).is_file():
                return _located(message_file, relative, root)
        moved = _find_by_info(root, root / tail.parent.parent, caller, started_at, ended_at)
        if moved is not None:
            return _located(message_file, moved.relative_to(root).as_posix(), root)
    return LocatedRecording(
        pbx_path=message_file, path=None, status=RecordingStatus.MISSING, kind=RecordingKind.VOICEMAIL
    )


def _spool_tail(message_file: str) -> PurePosixPath | None:
    """``<context>/<mailbox>/<folder>/msgNNNN`` of a message path, or None when it is not one."""
    m = _SPOOL_TAIL.search(message_file.replace("\\", "/"))
    if m is None:
        return None
    tail = PurePosixPath(m["tail"])
    if any(part in ("", ".", "..") for part in tail.parts):
        return None
    return tail


def _located(message_file: str, relative: str, root: Path) -> LocatedRecording:
    # Keep the path Asterisk named, not the one it was found under.
    return replace(locate_recording(relative, root, ""), pbx_path=message_file, kind=RecordingKind.VOICEMAIL)


def _find_by_info(root: Path, mailbox: Path, caller: str | None, started_at: float, ended_at: float) -> Path | None:
    """The sound file of the message in ``mailbox`` that this caller left during the call."""
    # A link inside the spool must not lead the search outside it.
    if not caller or not mailbox.is_dir() or not mailbox.resolve().is_relative_to(root.resolve()):
        return None
    wanted = _digits(caller)
    seen = 0
    for info in sorted(mailbox.glob("*/msg*.txt")):
        seen += 1
        if seen > _MAX_INFO_FILES:
            break
        fields = _read_info(info)
        if fields is None or _digits(fields.get("callerid", "")) != wanted:
            continue
        try:
            origtime = float(fields.get("origtime", ""))
        except ValueError:
            continue
        if not started_at - _ORIGTIME_SLACK_S <= origtime <= ended_at + _ORIGTIME_SLACK_S:
            continue
        for fmt in _FORMATS:
            sound = info.with_suffix(fmt)
            if sound.is_file():
                return sound
    return None


def _read_info(path: Path) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, configparser.Error):
        return None
    if not parser.has_section("message"):
        return None
    return dict(parser["message"])


def _digits(number: str) -> str:
    # callerid may read "Ivan <79161117004>" or just the number.
    inner = re.search(r"<([^>]*)>", number)
    return re.sub(r"\D", "", inner.group(1) if inner else number)
