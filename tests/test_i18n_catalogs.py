"""The catalogs are complete: every string the code marks (Python and the page scripts) has its
Russian and English, every plural form, no placeholder the code does not fill; and the package
build ships them compiled."""

from __future__ import annotations

import gettext
import importlib.util
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from pbxbridge.web.catalog_tools import extract, gaps, read_catalog, update
from pbxbridge.web.i18n import LANGUAGES

REPO = Path(__file__).resolve().parents[1]


def test_every_marked_string_is_translated_in_every_language() -> None:
    template = extract()
    # Sanity: the extraction sees Python (inside f-strings too) and the page scripts.
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert {"Sign out", "Sign in to pbxbridge", "{n} call", "{m} min {s} s"} <= ids
    problems = [str(gap) for language in LANGUAGES for gap in gaps(template, read_catalog(language), language)]
    assert not problems, "run scripts/catalog, then translate:\n" + "\n".join(problems)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_extraction_finds_strings_wherever_the_code_builds_text(tmp_path: Path) -> None:
    _write(tmp_path, "web/page.py", (
        'TITLE = N_("Module title")\n'
        'def page(request, n, x):\n'
        '    head = f"<h1>{_esc(_(request, \'Inside an f-string\'))}</h1>"\n'
        '    return head + n_(request, "{n} card", "{n} cards", n) + _(request, x)\n'
    ))
    _write(tmp_path, "web/static/js/page.js", (
        'const { t, tn } = PBX;\n'
        'const a = `${t("In a template")} ${tn("{n} row", "{n} rows", n)}`;\n'
        'PBX.t("Through PBX");\n'
    ))
    _write(tmp_path, "web/static/vendor/lib.js", 't("Not ours");\n')
    found = {m.id for m in extract(tmp_path) if m.id}
    assert found == {
        "Module title", "Inside an f-string", ("{n} card", "{n} cards"), "In a template", ("{n} row", "{n} rows"),
        "Through PBX",
    }


def test_a_catalog_that_lacks_anything_is_caught() -> None:
    template = Catalog(locale="ru")
    for msgid in ("Save", "Missing", "Fuzzy", "Calls of {name}"):
        template.add(msgid)
    template.add(("{n} call", "{n} calls"))
    template.add(("{n} card", "{n} cards"))
    ru = Catalog(locale="ru")
    ru.add("Save", "Сохранить")
    ru.add("Fuzzy", "Нечёткий", flags=["fuzzy"])
    ru.add("Calls of {name}", "Звонки {manager}")
    ru.add(("{n} call", "{n} calls"), ("{n} звонок", "{n} звонка", ""))
    ru.add(("{n} card", "{n} cards"), ("{n} карточка", "{n} карточки", "{n} карточек"))
    found = {(gap.msgid, gap.problem) for gap in gaps(template, ru, "ru")}
    assert found == {
        ("Missing", "missing"),
        ("Fuzzy", "fuzzy"),
        ("Calls of {name}", "placeholder manager is not in the message"),
        ("{n} call", "not translated"),
    }


def test_updating_keeps_translations_and_gives_new_plurals_every_russian_form(tmp_path: Path) -> None:
    first = Catalog()
    first.add("Save")
    update(first, tmp_path)
    ru = read_catalog("ru", tmp_path)
    ru["Save"].string = "Сохранить"
    with (tmp_path / "ru" / "LC_MESSAGES" / "messages.po").open("wb") as f:
        write_po(f, ru)
    second = Catalog()
    second.add("Save")
    second.add(("{n} call", "{n} calls"))
    left = update(second, tmp_path)
    ru = read_catalog("ru", tmp_path)
    assert ru["Save"].string == "Сохранить"
    assert ru[("{n} call", "{n} calls")].string == ("", "", "")
    assert [(g.msgid, g.problem) for g in left["ru"]] == [("{n} call", "not translated")]
    # English is its own translation, filled in at once.
    assert read_catalog("en", tmp_path)[("{n} call", "{n} calls")].string == ("{n} call", "{n} calls")
    assert left["en"] == []
    # Run again later with nothing new: the files are left as they are, date and all.
    files = sorted(tmp_path.rglob("*.po*"))
    before = [f.read_bytes() for f in files]
    second.creation_date = second.creation_date.replace(minute=(second.creation_date.minute + 7) % 60)
    update(second, tmp_path)
    assert [f.read_bytes() for f in files] == before


def test_the_package_build_compiles_the_catalogs(tmp_path: Path) -> None:
    """What `pip install` ships: the .mo files setup.py's build_py writes from the .po files."""
    spec = importlib.util.spec_from_file_location("pbxbridge_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)
    written = setup_module.compile_catalogs(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        f"pbxbridge/locale/{language}/LC_MESSAGES/messages.mo" for language in sorted(LANGUAGES)
    ]
    for language in LANGUAGES:
        mo = tmp_path / "pbxbridge" / "locale" / language / "LC_MESSAGES" / "messages.mo"
        with mo.open("rb") as f:
            translations = gettext.GNUTranslations(f)
        if language == "ru":
            assert translations.gettext("Sign out") == "Выйти"
            assert [translations.ngettext("{n} call", "{n} calls", n) for n in (1, 2, 5, 21)] == [
                "{n} звонок", "{n} звонка", "{n} звонков", "{n} звонок"]
        else:
            assert translations.gettext("Sign out") == "Sign out"
