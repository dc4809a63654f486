"""Stage 2b: real English text for calibration and recovery training, with a leak filter.

Corpora:

- ``gensim_lee``: the Lee news corpus (299 Australian news articles, one per line),
  shipped as test data in the ``gensim==4.4.0`` wheel; only that file is read.
- ``file``: a local UTF-8 text file of the user's, passages separated by blank lines.

The leak filter drops every passage that names both a question's subject and its
answer (e.g. "Australia" and "Canberra"): recovery training must not teach the
answers to the evaluation questions. Writes ``train.jsonl`` (calibration and recovery
training), ``heldout.jsonl`` (disjoint, for perplexity) and ``leak_report.json``.
"""

from __future__ import annotations

import random
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl
from .wheels import WheelFile, fetch_wheel_member

GENSIM_LEE = WheelFile(
    package="gensim",
    version="4.4.0",
    member="gensim/test/test_data/lee_background.cor",
    license="LGPL-2.1 (gensim test data)",
)

_WORD = re.compile(r"\w+", re.UNICODE)


def load_corpus(*, corpus: str, path: str | None, scratch: Path) -> tuple[list[str], dict]:
    if corpus == "gensim_lee":
        target = scratch / "lee_background.cor"
        provenance = fetch_wheel_member(GENSIM_LEE, target)
        passages = target.read_text(encoding="utf-8").splitlines()
    elif corpus == "file":
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"data.text.path: text file {path!r} does not exist")
        passages = re.split(r"\n\s*\n", Path(path).read_text(encoding="utf-8"))
        provenance = {"path": str(Path(path).resolve())}
    else:
        raise ValueError(f"data.text.corpus: unknown corpus {corpus!r}; choose gensim_lee or file")
    passages = [" ".join(p.split()) for p in passages]
    return [p for p in passages if p], provenance


class LeakFilter:
    """Finds passages that name a question's subject together with its answer.

    Matching is on whole words. Terms of one or two characters (chemical symbols such
    as "He" or "I") match case-sensitively, longer ones case-insensitively, so
    "helium" matches "Helium" but the symbol "In" does not match the word "in".
    """

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self.pairs = sorted({(s, a) for s, a in pairs})

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

        def present(term: str) -> bool:
            words = " ".join(_WORD.findall(term))
            return self._norm(words) in grams if words else False

        return [(s, a) for s, a in self.pairs if present(s) and present(a)]


def pairs_from_tasks(task_dirs: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(subject, answer) of every question in the knowledge task folders."""
    pairs = []
    for folder in map(Path, task_dirs):
        pairs.extend((q["subject"], q["answer_text"]) for q in read_jsonl(folder / f"{folder.name}.jsonl"))
    return pairs


def build_text(*, corpus: str, path: str | None, task_dirs: list[str], out_dir: str,
               heldout_fraction: float, min_chars: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="text-") as scratch:
        passages, provenance = load_corpus(corpus=corpus, path=path, scratch=Path(scratch))
    total = len(passages)
    passages = [p for p in passages if len(p) >= min_chars]
    too_short = total - len(passages)
    leak_filter = LeakFilter(pairs_from_tasks(task_dirs))
    kept, dropped = [], []
    for i, text in enumerate(passages):
        hits = leak_filter.leaks(text)
        (dropped if hits else kept).append({"id": i, "text": text, "leaks": hits})
    if not kept:
        raise ValueError(f"data.text: no passage of corpus {corpus!r} survived the filters")
    rng = random.Random(f"{seed}:text-split")
    order = list(range(len(kept)))
    rng.shuffle(order)
    n_heldout = max(1, round(heldout_fraction * len(kept))) if heldout_fraction > 0 else 0
    heldout_idx = set(order[:n_heldout])
    train = [{"id": r["id"], "text": r["text"]} for j, r in enumerate(kept) if j not in heldout_idx]
    heldout = [{"id": r["id"], "text": r["text"]} for j, r in enumerate(kept) if j in heldout_idx]
    report = {
        "corpus": corpus,
        "provenance": provenance,
        "passages_total": total,
        "dropped_too_short": too_short,
        "dropped_leaks": len(dropped),
        "dropped_examples": [{"id": r["id"], "leaks": r["leaks"][:5]} for r in dropped[:50]],
        "train_passages": len(train),
        "train_chars": sum(len(r["text"]) for r in train),
        "heldout_passages": len(heldout),
        "fact_pairs_checked": len(leak_filter.pairs),
        "seed": seed,
    }
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "heldout.jsonl", heldout)
        write_json(tmp / "leak_report.json", report)
    return report


PERPLEXITY_TASK = "heldout_ppl"


def build_perplexity_task(*, text_dir: str, out_dir: str) -> dict:
    """A local lm-eval ``loglikelihood_rolling`` task over the held-out passages
    (disjoint from the calibration and training text): word and byte perplexity."""
    import yaml

    heldout = Path(text_dir) / "heldout.jsonl"
    rows = read_jsonl(heldout)
    if not rows:
        raise ValueError(f"{heldout}: no held-out passage; set data.text.heldout_fraction > 0 or data.perplexity: false")
    final = Path(out_dir)
    task = PERPLEXITY_TASK
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", rows)
        config = {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str((final / f"{task}.jsonl").resolve())}},
            "test_split": "test",
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"},
                            {"metric": "bits_per_byte"}],
            "metadata": {"version": 1.0},
        }
        (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        manifest = {"task": task, "passages": len(rows), "chars": sum(len(r["text"]) for r in rows),
                    "source": str(heldout), "corpus": read_json(Path(text_dir) / "leak_report.json")["corpus"]}
        write_json(tmp / "manifest.json", manifest)
    return manifest
