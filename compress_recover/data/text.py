"""Rule ``text``: real English text for calibration and recovery training, leak-filtered.

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
from pathlib import Path

from ..io import atomic_dir, write_json, write_jsonl, write_manifest
from ..wheels import WheelFile, fetch_wheel_member
from .leaks import LeakFilter, pairs_from_tasks

GENSIM_LEE = WheelFile(
    package="gensim",
    version="4.4.0",
    member="gensim/test/test_data/lee_background.cor",
    license="LGPL-2.1 (gensim test data)",
)

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
        write_manifest(tmp, {"corpus": corpus, "provenance": provenance, "seed": seed})
    return report
