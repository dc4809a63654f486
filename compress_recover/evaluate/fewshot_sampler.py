"""lm-eval's few-shot sampler for the built knowledge tasks: demonstrations from the dev
questions only, never of the evaluated question's fact, never answered by one of its choices.

The few-shot task folders (:mod:`compress_recover.data.fewshot_task`) mark each question
with ``fewshot_pool`` (true for a dev question), ``fewshot_fact`` (its fact id),
``fewshot_answer`` and ``fewshot_choices`` (normalised texts) and set ``fewshot_split`` to
the test split, so lm-eval hands every evaluated document to the sampler (it does so only
when the two splits are one); :func:`compress_recover.data.fewshot_task.may_demonstrate`
decides which candidates may precede it. The candidates are the task's own documents, or,
in a format control's folder, the documents of a file beside it (:func:`pool_sampler`:
the other relations' dev questions, which lm-eval never scores). The sampler reads only
those fields, so it serves any variant of a task whose documents keep them (the
content-free variant's carry them unchanged). It draws with lm-eval's own seeded generator
(``fewshot_random_seed``); everything else (the delimiter, the target delimiter, the order
of demonstrations and question) is lm-eval's prompt building.
"""

from __future__ import annotations

from lm_eval.api.samplers import ContextSampler

from ..data.fewshot_task import may_demonstrate
from ..io import read_jsonl


class DevFactSampler(ContextSampler):
    pool_file: str | None = None  # a JSONL file of candidates instead of the task's documents

    def candidates(self) -> list[dict]:
        if self.pool_file is None:
            return list(self.fewshot_docs())
        if getattr(self, "_pool", None) is None:
            self._pool = read_jsonl(self.pool_file)
        return self._pool

    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if df:
            self.df = df
        pool = [d for d in self.candidates() if may_demonstrate(d, eval_doc)]
        if len(pool) < n:
            raise ValueError(f"{n} demonstrations asked, but only {len(pool)} dev question(s) of another fact and "
                             "answered by none of the question's choices exist"
                             + (f" in {self.pool_file}" if self.pool_file else "")
                             + "; lower the number of demonstrations (k) or raise data.split.dev_fraction")
        return self.rnd.sample(pool, n)


def pool_sampler(pool_file) -> type[DevFactSampler]:
    """A :class:`DevFactSampler` whose candidates are the documents of ``pool_file`` (a format
    control's ``demonstrations.jsonl``)."""
    return type("PoolSampler", (DevFactSampler,), {"pool_file": str(pool_file)})
