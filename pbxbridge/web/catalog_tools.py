"""Keeping the translation catalogs in step with the code: extract every marked string, update
ru.po and en.po, and say which messages a language still lacks.

``scripts/catalog`` runs this (``python -m pbxbridge.web.catalog_tools``); the catalog test uses
the same extraction, so what the test asks for is exactly what the script writes.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import re
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from pbxbridge.web.i18n import DOMAIN, LANGUAGE_NAMES, LANGUAGES, LOCALE_DIR

PACKAGE_DIR = LOCALE_DIR.parent
MAPPING = LOCALE_DIR / "babel.cfg"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
# Python: _(request, "text"), n_(request, "one", "many", n), N_("text").
# The page scripts: t("text"), tn("one", "many", n), also when called as PBX.t / PBX.tn.
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": (2,),
    "n_": (2, 3),
    "N_": None,
    "t": None,
    "tn": (1, 2),
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def extract_python(
    fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str], options: Mapping[str, Any]
) -> Iterator[tuple[int, str, tuple[str | None, ...], list[str]]]:
    """Babel's extraction method for Python, read from the syntax tree: on Python 3.11 Babel's
    own tokenizer never looks inside an f-string, and pages are built of f-strings
    (``f"<h1>{_(request, 'Calls')}</h1>"``)."""
    source = fileobj.read().decode(str(options.get("encoding", "utf-8")))
    calls: list[tuple[int, int, str, tuple[str | None, ...]]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name not in keywords:
            continue
        # Every positional argument; Babel takes the ones the keyword names (a variable: None, skipped).
        args = tuple(a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args)
        calls.append((node.lineno, node.col_offset, name, args))
    for lineno, _col, name, args in sorted(calls):
        yield lineno, name, args, []


def po_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Where a language's catalog is kept."""
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract(package_dir: Path = PACKAGE_DIR) -> Catalog:
    """Every marked string under the package, as a template catalog (msgstr empty)."""
    with MAPPING.open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    methods: list[tuple[str, Any]] = [
        (pattern, extract_python if method == "python" else method) for pattern, method in method_map
    ]
    template = Catalog(
        project="pbxbridge", domain=DOMAIN, fuzzy=False, charset="utf-8", msgid_bugs_address="",
        header_comment="# The web app's words, extracted by scripts/catalog: do not edit by hand.\n",
    )
    found = extract_from_dir(
        str(package_dir), methods, options_map, keywords=KEYWORDS,
        comment_tags=("Translators:",), strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        # Vendored scripts are not ours to translate.
        if "/vendor/" in filename.replace("\\", "/"):
            continue
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def read_catalog(language: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    """A language's catalog as it is on disk (an empty one when there is none yet)."""
    path = po_path(language, locale_dir)
    if not path.exists():
        return Catalog(
            locale=language, domain=DOMAIN, project="pbxbridge", fuzzy=False,
            header_comment=f"# {LANGUAGE_NAMES[language]} (pbxbridge): the web app's words. Update with scripts/catalog.\n",
            copyright_holder="pbxbridge", msgid_bugs_address="", last_translator="pbxbridge", language_team="pbxbridge",
        )
    with path.open("rb") as f:
        return read_po(f, locale=language, domain=DOMAIN)


@dataclass(frozen=True, slots=True)
class Gap:
    """A message a catalog does not translate (or translates with a placeholder it lacks)."""

    language: str
    msgid: str
    problem: str

    def __str__(self) -> str:
        return f"{self.language}: {self.msgid!r}: {self.problem}"


def _forms(message: Message) -> list[str]:
    strings = message.string
    if isinstance(strings, tuple | list):
        return [str(s) for s in strings]
    return [str(strings or "")]


def gaps(template: Catalog, catalog: Catalog, language: str) -> Iterator[Gap]:
    """Every message of the template the catalog does not translate fully and correctly."""
    for wanted in template:
        if not wanted.id:
            continue
        msgid = wanted.id[0] if isinstance(wanted.id, tuple | list) else wanted.id
        message = catalog.get(wanted.id, wanted.context)
        if message is None:
            yield Gap(language, msgid, "missing")
            continue
        if message.fuzzy:
            yield Gap(language, msgid, "fuzzy")
            continue
        forms = _forms(message)
        plural = isinstance(wanted.id, tuple | list)
        if plural and len(forms) != catalog.num_plurals:
            yield Gap(language, msgid, f"{len(forms)} plural forms, {language} has {catalog.num_plurals}")
            continue
        if not all(form.strip() for form in forms):
            yield Gap(language, msgid, "not translated")
            continue
        # A translation may leave a placeholder out, never name one the code does not fill.
        known = set(PLACEHOLDER.findall(" ".join(wanted.id if plural else [msgid])))
        if plural:
            known.add("n")
        for form in forms:
            unknown = set(PLACEHOLDER.findall(form)) - known
            if unknown:
                yield Gap(language, msgid, f"placeholder {', '.join(sorted(unknown))} is not in the message")


_CREATED = re.compile(rb'^"POT-Creation-Date: .*\\n"\n', re.M)


def _write(path: Path, catalog: Catalog) -> None:
    """Write a catalog file, unless only its creation date would change (no noise in the history)."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, include_lineno=False, sort_output=True, ignore_obsolete=True)
    text = buffer.getvalue()
    if path.exists() and _CREATED.sub(b"", path.read_bytes()) == _CREATED.sub(b"", text):
        return
    path.write_bytes(text)


def update(template: Catalog, locale_dir: Path = LOCALE_DIR) -> dict[str, list[Gap]]:
    """Write messages.pot and bring every language's .po in step; English is its own translation."""
    locale_dir.mkdir(parents=True, exist_ok=True)
    _write(locale_dir / TEMPLATE.name, template)
    left: dict[str, list[Gap]] = {}
    for language in LANGUAGES:
        catalog = read_catalog(language, locale_dir)
        # A copy each: Babel puts the template's own new messages into the catalog it updates.
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True)
        # Strings the code no longer shows: git remembers them.
        catalog.obsolete.clear()
        for message in catalog:
            # A new plural message arrives with the template's two forms; the language may have three.
            if isinstance(message.id, tuple | list) and len(_forms(message)) != catalog.num_plurals:
                forms = _forms(message)
                message.string = tuple((forms + [""] * catalog.num_plurals)[: catalog.num_plurals])
        if language == "en":
            for message in catalog:
                if message.id and not all(_forms(message)):
                    message.string = message.id
        path = po_path(language, locale_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, catalog)
        left[language] = list(gaps(template, catalog, language))
    return left


def main(argv: list[str] | None = None) -> int:
    """Extract, update the catalogs (unless --check) and list what is left to translate."""
    parser = argparse.ArgumentParser(prog="scripts/catalog", description=__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; fail if a catalog lacks a message")
    args = parser.parse_args(argv)
    template = extract()
    if args.check:
        left = {language: list(gaps(template, read_catalog(language), language)) for language in LANGUAGES}
    else:
        left = update(template)
    count = sum(len(g) for g in left.values())
    for language_gaps in left.values():
        for gap in language_gaps:
            print(gap)
    print(f"{len(template)} messages; {count} to translate", file=sys.stderr)
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
