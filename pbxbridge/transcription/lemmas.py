"""Words in dictionary form, so that «операторов» finds «операторы» and «скидка» finds «скидку»."""

from __future__ import annotations

import re
from functools import lru_cache

import pymorphy3

WORD_RE = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


@lru_cache(maxsize=1)
def _morph() -> pymorphy3.MorphAnalyzer:
    # Loading the dictionaries takes a while and ~15 MB; one analyser per process.
    return pymorphy3.MorphAnalyzer(lang="ru")


def fold(word: str) -> str:
    """Lower case with ё written as е, as people type it."""
    return word.lower().replace("ё", "е")


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The most likely dictionary form of one word (non-Russian words only folded)."""
    word = fold(word)
    if not _CYRILLIC.search(word):
        return word
    return fold(_morph().parse(word)[0].normal_form)


@lru_cache(maxsize=4096)
def lemma_candidates(word: str) -> frozenset[str]:
    """Every dictionary form a word may have (a query word is matched against all of them)."""
    word = fold(word)
    if not _CYRILLIC.search(word):
        return frozenset({word})
    return frozenset(fold(p.normal_form) for p in _morph().parse(word)) | {lemma(word)}


def words_of(text: str) -> list[str]:
    """The words of a text, without punctuation."""
    return WORD_RE.findall(text)


def lemmatise(text: str) -> str:
    """A text's words in dictionary form, space-separated (what the SQLite index holds)."""
    return " ".join(lemma(w) for w in words_of(text))
