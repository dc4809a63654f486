"""lm-eval's few-shot sampler for the built knowledge tasks: demonstrations from the dev
questions only, never of the evaluated question's fact, never answered by one of its choices,
and the same demonstrations before every question they are allowed before.

The few-shot task folders (:mod:`compress_recover.data.fewshot_task`) mark each question
with ``fewshot_pool`` (true for a dev question), ``fewshot_fact`` (its fact id),
``fewshot_answer`` and ``fewshot_choices`` (normalised texts) and set ``fewshot_split`` to
the test split, so lm-eval hands every evaluated document to the sampler (it does so only
when the two splits are one); :func:`compress_recover.data.fewshot_task.may_demonstrate`
decides which candidates may precede it. The candidates are the task's own documents, or,
in a format control's folder, the documents of a file beside it (:func:`pool_sampler`:
the other relations' dev questions, which lm-eval never scores).

**One fixed, seeded order per task** (MMLU's convention of one dev set of demonstrations per
subject): the candidates are shuffled once, with lm-eval's own seeded generator
(``fewshot_random_seed``, the run's seed), and every question takes the first ``k`` of
that order it allows. So most questions of a task see the same ``k`` demonstrations in the
same order (one prompt prefix, which shared-prefix scoring runs once per batch), and a
question the first ones would show its own fact or answer (or one of its choices as an
answer) takes the next allowed ones instead: re-drawn only where the rules demand it.
The sampler reads only those fields, so it serves any variant of a task whose documents keep
them (the content-free variant's carry them unchanged: the masked question is preceded by
the same demonstrations as the real one). Everything else (the delimiter, the target
delimiter, the order of demonstrations and question) is lm-eval's prompt building.
"""

from __future__ import annotations

from itertools import islice

from lm_eval.api.samplers import ContextSampler

from ..data.fewshot_task import may_demonstrate
from ..io import read_jsonl


class DevFactSampler(ContextSampler):
    pool_file: str | None = None  # a JSONL file of candidates instead of the task's documents
    _order: list[dict] | None = None

    def candidates(self) -> list[dict]:
        if self.pool_file is None:
            return list(self.fewshot_docs())
        if getattr(self, "_pool", None) is None:
            self._pool = read_jsonl(self.pool_file)
        return self._pool

    def set_rnd(self, rnd):
        self._order = None  # a new seed: a new order
        return super().set_rnd(rnd)

    def order(self) -> list[dict]:
        """Every dev candidate, in the one order this sampler's seed gives (drawn on first use)."""
        if self._order is None:
            pool = [d for d in self.candidates() if may_demonstrate(d, None)]
            self._order = self.rnd.sample(pool, len(pool))
        return self._order

    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if df:
            self.df, self._order = df, None
        chosen = list(islice((d for d in self.order() if may_demonstrate(d, eval_doc)), n))
        if len(chosen) < n:
            raise ValueError(f"{n} demonstrations asked, but only {len(chosen)} dev question(s) of another fact and "
                             "answered by none of the question's choices exist"
                             + (f" in {self.pool_file}" if self.pool_file else "")
                             + "; lower the number of demonstrations (k) or raise data.split.dev_fraction")
        return chosen


def pool_sampler(pool_file) -> type[DevFactSampler]:
    """A :class:`DevFactSampler` whose candidates are the documents of ``pool_file`` (a format
    control's ``demonstrations.jsonl``)."""
    return type("PoolSampler", (DevFactSampler,), {"pool_file": str(pool_file)})
