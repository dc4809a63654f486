"""The leak filter: finds text that names a question's subject together with its answer.

Used by rule ``text`` (such passages are dropped before calibration and training) and by
rule ``analysis`` (which re-checks every kept passage).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..io import read_jsonl

_WORD = re.compile(r"\w+", re.UNICODE)


class LeakFilter:
    """Finds passages that name a question's subject together with its answer.

    Matching is on whole words. Terms of one or two characters (chemical symbols such
    as "He" or "I") match case-sensitively, longer ones case-insensitively, so
    "helium" matches "Helium" but the symbol "In" does not match the word "in". A term
    also matches through its ``variants`` (by default a country's demonyms:
    "Australian" names Australia).
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], variants: dict[str, list[str]] | None = None):
        self.pairs = sorted({(s, a) for s, a in pairs})
        self.variants = default_variants() if variants is None else variants

    @staticmethod
    def _norm(term: str) -> str:
        return term if len(term) <= 2 else term.lower()

    def _grams(self, text: str) -> set[str]:
        words = _WORD.findall(text)
        grams: set[str] = set()
        for n in range(1, 6):
            for i in range(len(words) - n + 1):
                gram = " ".join(words[i:i + n])
                grams.add(gram)
                grams.add(gram.lower())
        return grams

    def leaks(self, text: str) -> list[tuple[str, str]]:
        grams = self._grams(text)

        def named(term: str) -> bool:
            words = " ".join(_WORD.findall(term))
            return self._norm(words) in grams if words else False

        def present(term: str) -> bool:
            return named(term) or any(named(v) for v in self.variants.get(term, ()))

        return [(s, a) for s, a in self.pairs if present(s) and present(a)]


def default_variants() -> dict[str, list[str]]:
    """Other words naming a term: every country's demonyms (countryinfo)."""
    from .facts import country_demonyms

    return country_demonyms()


def pairs_from_tasks(task_dirs: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(subject, answer) of every question in the knowledge task folders."""
    pairs = []
    for folder in map(Path, task_dirs):
        pairs.extend((q["subject"], q["answer_text"]) for q in read_jsonl(folder / f"{folder.name}.jsonl"))
    return pairs
