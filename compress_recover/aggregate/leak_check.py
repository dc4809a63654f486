"""The analysis's leak check, with a matcher of its own.

Rule ``text`` and rule ``generated_text`` drop passages with :class:`..data.leaks.LeakFilter`
(word n-grams looked up in a set). The analysis re-checks every kept passage with this
independent matcher (one regular expression per term, run over the raw text), so a bug in
either shows up as a disagreement instead of a silent leak. Both follow the same rules:
whole words, terms of one or two characters case-sensitive and longer ones not, words of
a term separated by anything that is not a word character, and a term also found through
its variants (a country's demonyms).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=None)
def _pattern(term: str) -> tuple[str, re.Pattern] | None:
    """(a word the text must hold, lowercased: a cheap test first; the term's expression)."""
    words = re.findall(r"\w+", term)
    if not words:
        return None
    body = r"\W+".join(re.escape(w) for w in words)
    flags = 0 if len(" ".join(words)) <= 2 else re.IGNORECASE
    return words[0].lower(), re.compile(rf"(?<!\w){body}(?!\w)", flags)


class RegexLeakMatcher:
    def __init__(self, pairs: Iterable[tuple[str, str]], variants: dict[str, list[str]]):
        self.pairs = sorted(set(pairs))
        self.variants = variants

    def _found(self, term: str, text: str, lowered: str) -> bool:
        for form in (term, *self.variants.get(term, ())):
            compiled = _pattern(form)
            if compiled is not None and compiled[0] in lowered and compiled[1].search(text):
                return True
        return False

    def leaks(self, text: str) -> list[tuple[str, str]]:
        lowered = text.lower()
        return [(s, a) for s, a in self.pairs if self._found(s, text, lowered) and self._found(a, text, lowered)]
