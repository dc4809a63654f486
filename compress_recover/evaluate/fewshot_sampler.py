"""lm-eval's few-shot sampler for the built knowledge tasks: demonstrations from the dev
questions only, never of the evaluated question's fact.

The few-shot task folders (:mod:`compress_recover.data.fewshot_task`) mark each question
with ``fewshot_pool`` (true for a dev question) and ``fewshot_fact`` (its fact id) and set
``fewshot_split`` to the test split, so lm-eval hands every evaluated document to the
sampler (it does so only when the two splits are one). The sampler draws with lm-eval's
own seeded generator (``fewshot_random_seed``); everything else (the delimiter, the
target delimiter, the order of demonstrations and question) is lm-eval's prompt building.
"""

from __future__ import annotations

from lm_eval.api.samplers import ContextSampler

from ..data.fewshot_task import FACT_FIELD, POOL_FIELD


class DevFactSampler(ContextSampler):
    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if df:
            self.df = df
        fact = None if eval_doc is None else eval_doc.get(FACT_FIELD)
        pool = [d for d in self.fewshot_docs() if d.get(POOL_FIELD) and (fact is None or d.get(FACT_FIELD) != fact)]
        if len(pool) < n:
            raise ValueError(f"{n} demonstrations asked, but only {len(pool)} dev question(s) of another fact exist; "
                             "lower the number of demonstrations (k) or raise data.split.dev_fraction")
        return self.rnd.sample(pool, n)
