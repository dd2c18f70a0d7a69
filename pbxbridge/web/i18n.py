"""Translations of what the web app shows: the request's language and its catalog.

Strings in Python are marked with ``_(request, "text", **params)`` (translated now),
``n_(request, "one call", "{n} calls", n)`` (plural forms) and ``N_("text")`` (marked for
extraction, translated later with ``_(request, value)``, e.g. module-level titles).
Placeholders are ``{name}``, filled from ``params`` after translation.
"""

from __future__ import annotations

from aiohttp import web


def N_(message: str) -> str:
    """Mark a string for the catalog without translating it here."""
    return message


def _(request: web.Request | None, message: str, **params: object) -> str:
    """The message in the request's language, placeholders filled."""
    return message.format(**params) if params else message


def n_(request: web.Request | None, singular: str, plural: str, n: int, **params: object) -> str:
    """The plural form for ``n`` in the request's language; ``{n}`` is filled too."""
    text = singular if n == 1 else plural
    return text.format(n=n, **params)
