"""What a downloaded recording is called: the client's number, the local day and time, the manager.

``+79161110001_26.11.2026_20-04_Иван Петров.wav`` tells a sales head which conversation a file
in their Downloads folder holds; ``audio.wav`` told them nothing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

# Characters no file may hold on Windows, macOS or Linux, and the ones that end a quoted header value.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f;]+')
_SPACES = re.compile(r"\s+")
# A name part longer than this is cut: the whole name must stay well under 255 bytes.
_PART_MAX = 60


def _safe(part: str) -> str:
    """A part of a file name: no path separators, reserved or control characters, no dots at the ends."""
    text = unicodedata.normalize("NFC", part)
    text = _UNSAFE.sub("-", text)
    text = _SPACES.sub(" ", text).strip(" .-")
    return text[:_PART_MAX].strip(" .-")


def recording_file_name(
    *,
    number: str | None,
    started_at: datetime,
    zone: str,
    manager_extension: str | None,
    manager_name: str | None,
    suffix: str,
) -> tuple[str, str]:
    """(the full name, an ASCII-only name for old clients) of a recording's download.

    The time is the department's local time, as the journal shows it. The ASCII name has the
    manager's extension where the full one has a name no ASCII can write.
    """
    local = started_at.astimezone(ZoneInfo(zone))
    head = [_safe(number or "") or "call", local.strftime("%d.%m.%Y"), local.strftime("%H-%M")]
    name = _safe(manager_name or "")
    extension = _safe(manager_extension or "")
    ext = "." + (re.sub(r"[^A-Za-z0-9]", "", suffix.lstrip(".")).lower() or "wav")
    full = "_".join([*head, *([name or extension] if name or extension else [])]) + ext
    ascii_name = name if name and name.isascii() else extension
    fallback = "_".join([*head, *([ascii_name] if ascii_name else [])]) + ext
    if not fallback.isascii():
        # The number itself held something no ASCII writes: fall back to the bare pattern.
        fallback = "recording" + ext
    return full, fallback


def content_disposition(full: str, fallback: str) -> str:
    """An attachment header any browser reads: ``filename`` in ASCII, ``filename*`` in UTF-8 (RFC 6266)."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(full, safe='')}"
