"""The package build compiles the translation catalogs: every
pbxbridge/locale/<lang>/LC_MESSAGES/messages.po becomes the messages.mo the web app loads,
so an installed pbxbridge speaks Russian and English without Babel's command line.
Everything else about the package is in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def compile_catalogs(build_lib: Path, source: Path = HERE) -> list[Path]:
    """Write a .mo beside each .po's place in the built package; returns what it wrote."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written: list[Path] = []
    for po in sorted((source / "pbxbridge" / "locale").glob("*/LC_MESSAGES/*.po")):
        language = po.parent.parent.name
        with po.open("rb") as f:
            catalog = read_po(f, locale=language)
        target = build_lib / po.relative_to(source).with_suffix(".mo")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            write_mo(f, catalog)
        written.append(target)
    return written


class BuildWithCatalogs(build_py):
    """build_py, then the compiled catalogs in the built package."""

    def run(self) -> None:
        super().run()
        compile_catalogs(Path(self.build_lib))


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildWithCatalogs})
