"""The independent unit of resampling: a fact, joined with every fact that shares its right answer.

Two questions are dependent when they ask one fact (a relation and its inverse, a capital
asked again as a city) and also when they share their right answer: a compression or remedy
that moves the model's prior for "China" moves every question whose answer is "China"
together (issue 34 measured it: a frequent answer was right in up to 92% of the questions
it appeared in, and the compressed model fell back to it). The unit is therefore the
connected component of the graph whose nodes are facts and answers and whose edges are the
questions (fact -- right answer): one-way cluster resampling of these components is valid
under any dependence inside a component, and since the built tasks cap how many questions
one answer may be right in (:mod:`compress_recover.data.knowledge_task`), components stay
small. A two-way (fact x answer) product bootstrap would avoid merging, at the price of
being conservative with unequal cluster sizes and of more machinery; with facts nested in
answers almost everywhere (a fact has one answer) the components are the answer clusters
plus the few questions that restate a fact under another answer.

An answer joins questions only when the choices' texts are known (the built tasks and any
lm-eval multiple-choice task whose arguments carry the choices): a bare gold index would
join every question whose answer is the first choice.
"""

from __future__ import annotations

import json

NO_TEXTS = ("", "null", "None", "nan")


def answer_key(answer, choices) -> str | None:
    """The right answer's normalised text (NFKC, casefolded, whitespace collapsed), or None
    when the question's choices have no texts (``choices`` is the question table's JSON list,
    "null" without texts)."""
    from ...data.facts import _normalised

    if answer is None or choices is None or str(choices) in NO_TEXTS:
        return None
    try:
        texts = json.loads(str(choices))
    except ValueError:
        return None
    if not texts or str(answer) in ("", "nan"):
        return None
    return _normalised(answer)


def answer_keys(frame) -> list | None:
    """Per row of a question table its right answer's key (:func:`answer_key` of its
    ``answer`` and ``choices`` columns); None when the table has no such columns."""
    if not {"answer", "choices"} <= set(frame):
        return None
    return [answer_key(a, c) for a, c in zip(frame.answer, frame.choices, strict=True)]


def question_clusters(facts, answers=None) -> tuple:
    """Per question its cluster id: the first-seen fact of its connected component of the
    fact -- answer graph (:mod:`.clusters`). ``answers``: per question an answer key
    (:func:`answer_key`) or None (the question joins through its fact only); omitted: the
    clusters are the facts."""
    facts = [str(f) for f in facts]
    answers = [None] * len(facts) if answers is None else list(answers)
    if len(answers) != len(facts):
        raise ValueError(f"question_clusters: {len(facts)} facts but {len(answers)} answers")
    parent: dict = {}

    def find(node):
        parent.setdefault(node, node)
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    for fact, answer in zip(facts, answers, strict=True):
        a = find(("fact", fact))
        if answer is not None:
            b = find(("answer", answer))
            if a != b:
                parent[max(a, b)] = min(a, b)  # any fixed rule: the id below is the first-seen fact
    first: dict = {}
    for fact in facts:
        first.setdefault(find(("fact", fact)), fact)
    return tuple(first[find(("fact", f))] for f in facts)


def cluster_sizes(clusters) -> dict:
    """Questions per cluster: the count, the largest and the size-weighted mean (the mean
    cluster size a random question sits in, which inflates a mean's variance by about
    1 + (that - 1) * the intra-cluster correlation)."""
    from collections import Counter

    counts = Counter(clusters)
    n = sum(counts.values())
    return {"questions": n, "clusters": len(counts), "largest": max(counts.values(), default=0),
            "weighted_mean_size": sum(c * c for c in counts.values()) / n if n else float("nan")}
