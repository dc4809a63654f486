"""The analysis's leak check: no kept passage names a question's subject with its answer, found by a matcher of its own.

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
from pathlib import Path

from ...data.leaks import default_variants, pairs_from_tasks
from ...io import read_json, read_jsonl


class LeakError(RuntimeError):
    pass


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


def check_leaks(text_dir: str | Path, task_dirs: list[str]) -> dict:
    """Fail if any kept passage (train or held-out) names a question's subject and answer;
    else the counts of the text's ``leak_report.json`` (with its ``model`` for a model's
    generated text)."""
    leak_filter = RegexLeakMatcher(pairs_from_tasks(task_dirs), default_variants())  # not the filter's matcher
    hits = []
    for split in ("train", "heldout"):
        for row in read_jsonl(Path(text_dir) / f"{split}.jsonl"):
            found = leak_filter.leaks(row["text"])
            if found:
                hits.append({"split": split, "id": row["id"], "leaks": found[:3]})
    if hits:
        raise LeakError(f"{len(hits)} passage(s) of {text_dir} name a question's subject and answer together, "
                        f"e.g. {hits[:3]}; rebuild that text with the current leak filter and knowledge tasks "
                        "(delete the folder, or snakemake --forcerun text / generated_text)")
    report = read_json(Path(text_dir) / "leak_report.json")
    optional = {k: report[k] for k in ("model", "dropped_too_short") if k in report}
    return {**optional, "dropped_leaks": report["dropped_leaks"], "passages_total": report["passages_total"],
            "train_passages": report["train_passages"], "heldout_passages": report["heldout_passages"],
            "fact_pairs_checked": len(leak_filter.pairs), "remaining_leaks": 0}
