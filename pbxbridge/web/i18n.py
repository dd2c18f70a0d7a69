"""Translations of what the web app shows: the request's language and its catalog.

Strings in Python are marked with ``_(request, "text", **params)`` (translated now),
``n_(request, "one call", "{n} calls", n)`` (plural forms) and ``N_("text")`` (marked for
extraction, translated later with ``_(request, value)``, e.g. module-level titles).
Placeholders are ``{name}``, filled from ``params`` after translation.

The catalogs are gettext's: ``pbxbridge/locale/<lang>/LC_MESSAGES/messages.po``, compiled
to ``.mo`` by the package build. A source checkout without a current ``.mo`` compiles the
``.po`` in memory when the catalog is first asked for, so an edited translation shows on
the next start without a build step. The browser gets the same catalog as JSON
(``browser_catalog``), so there is one list of translations, not two.

The language of a request: the signed-in user's own setting, else the language the
visitor picked with the switcher (a cookie), else the browser's Accept-Language, else
``web.language`` from the configuration.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "messages"
# Every language the web app speaks; the first is the default when nothing else says.
LANGUAGES: tuple[str, ...] = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
# Set by the language switcher for visitors who have not signed in (and kept after).
LANGUAGE_COOKIE = "pbxb_lang"
LANGUAGE_NAMES = {"ru": "Русский", "en": "English"}

_LANGUAGE: web.RequestKey[str] = web.RequestKey("pbxbridge_language", str)


def N_(message: str) -> str:
    """Mark a string for the catalog without translating it here."""
    return message


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    """One language's catalog: gettext for Python, the same messages for the browser."""

    language: str
    locale: Locale
    translations: gettext.GNUTranslations
    # What the page scripts receive (see ``browser_catalog``).
    browser: dict[str, Any]
    browser_script: bytes
    # Changes whenever a translation does: the catalog script's URL carries it.
    version: str


def _catalog_file(language: str) -> Catalog:
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    # An installed package has only the compiled .mo; a checkout has the .po, maybe a stale .mo.
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            catalog = read_mo(f)
        catalog.locale = Locale.parse(language)
        return catalog
    if not po.exists():
        raise FileNotFoundError(f"no translation catalog for {language!r} under {folder}")
    with po.open("rb") as f:
        return read_po(f, locale=language, domain=DOMAIN)


def _plural_categories(catalog: Catalog, locale: Locale) -> dict[str, int]:
    """Which of the catalog's plural forms each CLDR category (one, few, many, other) takes.

    gettext numbers a language's forms (Russian: 0 for 1/21, 1 for 2-4, 2 for 5-20); the
    browser's Intl.PluralRules names CLDR categories. The catalog's own rule, asked for
    the numbers 0-199, pairs them up, so both sides always agree.
    """
    rule = gettext.c2py(catalog.plural_expr)
    mapping: dict[str, int] = {}
    for n in range(200):
        mapping.setdefault(str(locale.plural_form(n)), rule(n))
    return mapping


@functools.cache
def load_catalog(language: str) -> LoadedCatalog:
    """The language's catalog, read once per process."""
    if language not in LANGUAGES:
        raise ValueError(f"not a language of the web app: {language!r}")
    catalog = _catalog_file(language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    translations = gettext.GNUTranslations(buffer)
    messages: dict[str, str] = {}
    plurals: dict[str, list[str]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple | list):
            forms = [str(s) for s in message.string or ()]
            if forms and all(forms):
                plurals[str(message.id[0])] = forms
        elif message.string:
            messages[str(message.id)] = str(message.string)
    locale = Locale.parse(language)
    plural_of = _plural_categories(catalog, locale)
    browser: dict[str, Any] = {
        "language": language,
        "plural": plural_of,
        # A category the rule never produced for whole numbers (Russian "other": fractions).
        "plural_default": catalog.num_plurals - 1,
        "messages": messages,
        "plurals": plurals,
    }
    text = json.dumps(browser, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    script = f"window.PBX_CATALOG = {text};\n".encode()
    version = hashlib.sha256(script).hexdigest()[:12]
    return LoadedCatalog(language, locale, translations, browser, script, version)


def browser_catalog(language: str) -> dict[str, Any]:
    """The catalog as the page scripts use it: ``messages`` (msgid -> text), ``plurals``
    (singular msgid -> every form, in the catalog's order) and ``plural`` (CLDR category ->
    index of the form)."""
    return load_catalog(language).browser


def parse_accept_language(header: str) -> list[str]:
    """The languages of an Accept-Language header, most wanted first (q=0 means "not this")."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _sep, rest = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = 1.0
        for param in rest.split(";"):
            key, _sep, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _q, _position, tag in sorted(ranked)]


def negotiate(header: str | None, available: tuple[str, ...] = LANGUAGES) -> str | None:
    """The first language of the header the app speaks (ru-RU is ru), or None."""
    for tag in parse_accept_language(header or ""):
        primary = tag.split("-", 1)[0].split("_", 1)[0]
        if primary in available:
            return primary
    return None


def configured_language(request: web.Request) -> str:
    """``web.language`` from the configuration."""
    # Imported here: every module of the web app marks strings with this one, so it imports none of them.
    from pbxbridge.web.context import CONTEXT

    context = request.app.get(CONTEXT)
    configured = context.config.web.language if context is not None else DEFAULT_LANGUAGE
    return configured if configured in LANGUAGES else DEFAULT_LANGUAGE


def language(request: web.Request) -> str:
    """The request's language: the user's setting, the switcher's cookie, Accept-Language, the config."""
    chosen = request.get(_LANGUAGE)
    if chosen is not None:
        return chosen
    from pbxbridge.web.context import USER  # see configured_language

    user = request.get(USER)
    own = getattr(user, "language", None)
    cookie = request.cookies.get(LANGUAGE_COOKIE)
    if own in LANGUAGES:
        chosen = own
    elif cookie in LANGUAGES:
        chosen = cookie
    else:
        chosen = negotiate(request.headers.get("Accept-Language")) or configured_language(request)
    # Kept once the session middleware has looked for the user; before that the answer may change.
    if USER in request:
        request[_LANGUAGE] = chosen
    return chosen


def _translations(request: web.Request | None) -> gettext.NullTranslations:
    # No request (the command line, logs): the English the message is written in.
    if request is None:
        return gettext.NullTranslations()
    return load_catalog(language(request)).translations


def _(request: web.Request | None, message: str, **params: object) -> str:
    """The message in the request's language, placeholders filled."""
    text = _translations(request).gettext(message)
    return text.format(**params) if params else text


def n_(request: web.Request | None, singular: str, plural: str, n: int, **params: object) -> str:
    """The plural form for ``n`` in the request's language; ``{n}`` is filled too
    (grouped as the language writes numbers: 12 345 in Russian, 12,345 in English)."""
    text = _translations(request).ngettext(singular, plural, n)
    locale = load_catalog(language(request)).locale if request is not None else Locale.parse("en")
    return text.format(n=format_decimal(n, locale=locale), **params)
