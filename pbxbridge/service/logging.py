"""The daemon's log: one JSON object per line (for journald, Loki, jq), secrets never written.

A record's ``extra`` fields (``linkedid``, ``pbx``, ``status`` …) become keys of
its JSON object, so a call can be followed through the log by its linkedid.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy.engine import make_url

from pbxbridge.config import Config, crm_secrets

REDACTED = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# user:password@ in any URL, whoever logs it.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?P<at>@)", re.I)
# AMI's own secret headers, should a Login or Challenge frame ever be logged.
_AMI_SECRET = re.compile(r"(?P<head>['\"]?(?:secret|key)['\"]?\s*[:=]\s*['\"]?)(?P<password>[^'\"\s,}\r\n]+)", re.I)
# Libraries that write a line per AMI frame or per SQL statement below WARNING.
CHATTY_LIBRARIES = ("aiosqlite", "asyncio", "panoramisk", "sqlalchemy", "alembic", "asyncpg", "aiohttp.access")


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, message, its extra fields, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # One event per line: json.dumps escapes every newline inside values.
        return json.dumps(entry, ensure_ascii=False, default=str)


class RedactSecrets(logging.Filter):
    """Replaces configured secrets, URL passwords and AMI Secret headers in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also hide these strings (and their URL-quoted forms) from now on."""
        for secret in secrets:
            # Very short values would blank out ordinary words.
            if not secret or len(secret) < 4:
                continue
            for form in {secret, quote(secret, safe=""), unquote(secret)}:
                if form and form not in self.secrets:
                    self.secrets.append(form)
        # Longest first, so that a secret containing another is hidden whole.
        self.secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)
        return _AMI_SECRET.sub(lambda m: f"{m['head']}{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def config_secrets(config: Config) -> list[str]:
    """Every secret the settings hold: AMI secrets, the database password, the web key."""
    secrets = [pbx.secret for pbx in config.pbx]
    try:
        password = make_url(config.database.url).password
    except Exception:
        password = None
    if password:
        secrets.append(str(password))
    secrets.append(config.web.secret_key)
    secrets += crm_secrets(config)
    return [s for s in secrets if s]


def make_handler(fmt: str, stream: Any = None) -> logging.Handler:
    """A stderr handler writing JSON lines (``fmt="json"``) or plain text."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def install(config: Config, root: logging.Logger | None = None) -> RedactSecrets:
    """Apply ``[log]`` to the process's log: format on its stream handlers, redaction.

    Handlers others put on the root logger (a test runner's capture) keep
    their format but get the redaction filter too.
    """
    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(make_handler(config.log.format))
    redact = RedactSecrets(config_secrets(config))
    for handler in root.handlers:
        # Exactly a StreamHandler: what ``pbxbridge run`` put there, not a subclass
        # someone else owns.
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(JsonFormatter() if config.log.format == "json" else logging.Formatter(TEXT_FORMAT))
        for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(old)
        handler.addFilter(redact)
    # log.level DEBUG is for pbxbridge's own lines: libraries that would write
    # a line per frame or per SQL statement keep to warnings.
    if logging.getLevelName(config.log.level) < logging.INFO:
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
    return redact
