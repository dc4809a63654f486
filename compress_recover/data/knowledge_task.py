"""Rule ``knowledge_task``: one multiple-choice lm-eval task built from real facts.

Each question has one correct answer and ``num_choices - 1`` distractors drawn, with a
seeded generator, from the answers of the *same relation* (capitals for a capital
question), so a model cannot win by spotting the odd type out.

**Balanced choices.** A rule that never reads the subject must not beat chance (a probe
measures what it names). Right answers are skewed (a tenth of the world's most populous
cities are Chinese; most currencies are a "Dollar", "Euro" or "Franc"), so distractors drawn
uniformly from the relation's distinct answers made "pick the most frequent answer" score
0.55 on ``city_country`` and 0.63 on ``currencies`` (chance 0.25). Distractors are therefore
drawn with the right answers' multiplicity, :func:`balanced_distractors`: an answer right
in r of the kept questions is a distractor in ``(num_choices - 1) * r`` others, so every
answer is right in exactly 1/num_choices of the questions it appears in. That is feasible
only when an answer is right in at most N/num_choices of the N questions (an answer appears
at most once per question), hence **the answer cap** (:func:`capped_facts`): one answer is
the right answer of at most ``max_answer_presence * N / num_choices`` questions
(config.yaml ``data.max_answer_presence``, default 0.5: balanced, a capped answer appears
in at most half the questions). 1 is the feasibility limit; below it the draw keeps room to
stay random, and the cap also bounds the clusters of questions sharing a right answer,
which the analysis resamples as one dependent unit. The facts over the cap are the ones
dropped (the latest in the seeded order); the cap is computed from the questions kept
(after ``max_questions``), and the distractors from their right answers only, so an answer
that is right in no kept question is never a distractor while balance is feasible.
:func:`answer_balance` and :func:`frequency_rule_accuracy` measure what is left for a prior.

What balance cannot remove: on a one-to-one relation (every answer right once) a rule fitted
on the dev questions sees the split, not a prior. An answer right in a dev question is never
right in a test question, so "pick the most frequent dev answer" scores below chance on test
(about 0.10 against 0.25 with the default split) and its reverse, "avoid the dev answers",
above it (about 0.33). Neither is open to a model scored zero-shot (it never sees the split),
and few-shot demonstrations are never answered by one of the question's choices
(:func:`compress_recover.data.fewshot_task.may_demonstrate`), so no prompt shows it either.

Writes ``<task>.jsonl`` (one question a line: subject, question, choices, answer index),
``<task>.yaml`` (an lm-eval task reading that file), with ``data.content_free_mask`` set its
content-free variant (``<task>_content_free.yaml`` and ``content_free.py``:
:mod:`compress_recover.data.content_free`), and ``manifest.json``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import yaml

from ..io import atomic_dir, shortfall, write_jsonl, write_manifest
from .content_free import write_variant
from .facts import RELATIONS, Fact, Relation

DEFAULT_MAX_ANSWER_PRESENCE = 0.5  # config.yaml data.max_answer_presence's default


def make_questions(relation: Relation, *, num_choices: int, seed: int, max_questions: int | None = None,
                   max_answer_presence: float = DEFAULT_MAX_ANSWER_PRESENCE) -> list[dict]:
    """Deterministic multiple-choice questions for ``relation`` (see the module docstring):
    :func:`balanced_questions` without its balance record."""
    return balanced_questions(relation, num_choices=num_choices, seed=seed, max_questions=max_questions,
                              max_answer_presence=max_answer_presence)[0]


def balanced_questions(relation: Relation, *, num_choices: int, seed: int, max_questions: int | None = None,
                       max_answer_presence: float = DEFAULT_MAX_ANSWER_PRESENCE) -> tuple[list[dict], dict]:
    """(questions, balance record) for ``relation``.

    Subjects are de-duplicated (first fact wins) and shuffled by the seeded generator; the
    answer cap (:func:`capped_facts`) keeps at most ``max_questions`` of them; distractors
    are drawn by :func:`balanced_distractors` from the kept questions' right answers, and
    the correct answer's position is drawn uniformly by the same generator. The record
    (for the task's manifest): ``candidates`` (questions before the cap), ``questions``,
    ``removed_by_cap``, ``answer_cap``, ``max_answer_presence``, ``spare_distractors``
    (distractor slots the kept answers could not fill, 0 whenever balance is feasible) and
    :func:`answer_balance`'s figures.
    """
    if not 0 < max_answer_presence <= 1:
        raise ValueError(f"data.max_answer_presence must be in (0, 1], got {max_answer_presence}")
    seen: set[str] = set()
    facts = []
    for fact in sorted(relation.load(), key=lambda f: (f.subject, f.answer)):
        if fact.subject not in seen and fact.subject != fact.answer:
            seen.add(fact.subject)
            facts.append(fact)
    answers = sorted({f.answer for f in facts})
    if len(answers) < num_choices:
        raise ValueError(f"task {relation.name}: only {len(answers)} distinct answers for {num_choices} choices")
    rng = random.Random(f"{seed}:{relation.name}")
    rng.shuffle(facts)
    candidates = len(facts) if max_questions is None else min(len(facts), max_questions)
    kept, cap = capped_facts(facts, num_choices=num_choices, max_answer_presence=max_answer_presence,
                             max_questions=max_questions)
    distractors, spare = balanced_distractors([f.answer for f in kept], num_choices - 1, rng, spare=answers)
    questions = []
    for i, (fact, others) in enumerate(zip(kept, distractors, strict=True)):
        choices = list(others)
        rng.shuffle(choices)
        position = rng.randrange(num_choices)
        choices.insert(position, fact.answer)
        questions.append({
            "id": f"{relation.name}-{i:04d}",
            "subject": fact.subject,
            "answer_text": fact.answer,
            "question": relation.template.format(subject=fact.subject),
            "choices": choices,
            "answer": position,
        })
    record = {"candidates": candidates, "removed_by_cap": candidates - len(kept), "answer_cap": cap,
              "max_answer_presence": max_answer_presence, "spare_distractors": spare, **answer_balance(questions)}
    return questions, record


def answer_cap(questions: int, *, num_choices: int, max_answer_presence: float) -> int:
    """The most of ``questions`` questions one answer may be the right answer of: an answer
    right in r of them appears in ``num_choices * r`` once balanced, at most a
    ``max_answer_presence`` share of the questions; at least 1."""
    return max(1, math.floor(max_answer_presence * questions / num_choices))


def capped_facts(facts: list[Fact], *, num_choices: int, max_answer_presence: float,
                 max_questions: int | None = None) -> tuple[list[Fact], int]:
    """(the facts kept, the answer cap): walking ``facts`` in order, a fact is kept unless
    its answer is already the answer of ``cap`` kept facts, until ``max_questions`` are kept.
    The cap is the largest one within :func:`answer_cap` of the questions it keeps (the cap
    applies before the ``max_questions`` cut, so the cut keeps its number whenever the facts
    allow, and the cap follows the questions actually kept)."""
    limit = len(facts) if max_questions is None else max_questions
    most = max(Counter(f.answer for f in facts).values(), default=1)
    for cap in range(most, 0, -1):
        counts: Counter[str] = Counter()
        kept = []
        for fact in facts:
            if len(kept) == limit:
                break
            if counts[fact.answer] < cap:
                counts[fact.answer] += 1
                kept.append(fact)
        if cap <= answer_cap(len(kept), num_choices=num_choices, max_answer_presence=max_answer_presence):
            return kept, cap
    raise AssertionError("unreachable: a cap of 1 always fits")  # answer_cap is at least 1


def balanced_distractors(rights: list[str], per_question: int, rng: random.Random, *,
                         spare: list[str]) -> tuple[list[list[str]], int]:
    """(per question, its ``per_question`` distinct distractors; the slots filled from ``spare``).

    Each answer is a distractor ``per_question`` times for every question it is the right
    answer of (its multiplicity among ``rights``), never in a question it answers, so every
    answer is right in 1/(per_question + 1) of the questions it appears in. Question by
    question, an answer is drawn with a probability proportional to its remaining distractor
    slots over the remaining questions it may appear in (systematic sampling, exactly
    ``per_question`` distinct draws), and an answer that must appear in every remaining
    question it may appear in is taken. When the kept answers cannot fill a question (fewer
    distinct answers than choices, or an infeasible draw), the rest comes from the answers
    in ``spare`` that are not right in the question, those right in some kept question first;
    the count of such slots is returned (0 whenever the cap makes balance feasible)."""
    right_counts = Counter(rights)
    names = sorted(right_counts)
    demand = {a: per_question * r for a, r in right_counts.items()}   # distractor slots still to fill
    room = {a: len(rights) - r for a, r in right_counts.items()}      # questions left where it may appear
    out, filled = [], 0
    for right in rights:
        open_ = [a for a in names if a != right and demand[a] > 0]
        forced = [a for a in open_ if demand[a] >= room[a]]
        rng.shuffle(forced)
        forced.sort(key=lambda a: room[a] - demand[a])  # the most overdue first (stable: ties stay shuffled)
        chosen = forced[:per_question]
        rest = [a for a in open_ if demand[a] < room[a]]
        chosen += _systematic_sample(rest, [demand[a] / room[a] for a in rest], per_question - len(chosen), rng)
        if len(chosen) < per_question:
            taken = set(chosen) | {right}
            kept_rest = [a for a in names if a not in taken]
            outside = [a for a in spare if a not in taken and a not in right_counts]
            need = per_question - len(chosen)
            extra = rng.sample(kept_rest, min(need, len(kept_rest)))
            chosen += extra + rng.sample(outside, need - len(extra))
            filled += need
        for a in names:
            if a != right:
                room[a] -= 1
        for a in chosen:
            if a in demand and demand[a] > 0:
                demand[a] -= 1
        out.append(chosen)
    return out, filled


def _systematic_sample(items: list[str], weights: list[float], n: int, rng: random.Random) -> list[str]:
    """``n`` distinct items, item i with probability min(1, c * weights[i]) (c such that
    they sum to ``n``): systematic sampling over the items in a shuffled order; every item
    with a positive weight when there are ``n`` or fewer."""
    positive = [(a, w) for a, w in zip(items, weights, strict=True) if w > 0]
    if n <= 0:
        return []
    if len(positive) <= n:
        return [a for a, _ in positive]
    rng.shuffle(positive)
    probs = _inclusion_probabilities([w for _, w in positive], n)
    start, total, chosen = rng.random(), 0.0, []
    for (a, _), p in zip(positive, probs, strict=True):
        if math.floor(total + p - start) > math.floor(total - start) or (p >= 1.0):
            chosen.append(a)
        total += p
    if len(chosen) < n:  # floating-point shortfall: the most probable of the rest
        rest = sorted((p, i) for i, ((a, _), p) in enumerate(zip(positive, probs, strict=True)) if a not in chosen)
        chosen += [positive[i][0] for _, i in rest[::-1][:n - len(chosen)]]
    return chosen[:n]


def _inclusion_probabilities(weights: list[float], n: int) -> list[float]:
    """min(1, c * w) for the c that makes them sum to ``n`` (the weights above the cap are set to 1)."""
    fixed: set[int] = set()
    while True:
        free = [w for i, w in enumerate(weights) if i not in fixed]
        scale = (n - len(fixed)) / sum(free)
        over = {i for i, w in enumerate(weights) if i not in fixed and scale * w >= 1}
        if not over:
            return [1.0 if i in fixed else scale * w for i, w in enumerate(weights)]
        fixed |= over


MIN_APPEARANCES = 10  # an answer's right share is read only where it has this many questions (one fact is no rate)


def answer_text(question: dict) -> str:
    """The right answer's text of a multiple-choice question (its choices and answer index)."""
    return question["choices"][question["answer"]]


def answer_balance(questions: list[dict], *, min_appearances: int = MIN_APPEARANCES) -> dict:
    """How much a subject-blind prior can read off a task's answers: ``questions``,
    ``answers`` (distinct right answers), ``frequent_answers`` (answers among the choices of
    at least ``min_appearances`` questions) and ``max_right_share``: over those, the largest
    (questions it is right in) / (questions it appears in) (1/choices when balanced; None
    when no answer appears that often)."""
    appears, right = Counter(), Counter()
    for q in questions:
        appears.update(set(q["choices"]))
        right[answer_text(q)] += 1
    frequent = [a for a, n in appears.items() if n >= min_appearances]
    return {"questions": len(questions), "answers": len(right), "frequent_answers": len(frequent),
            "max_right_share": max((right[a] / appears[a] for a in frequent), default=None)}


def frequency_rule_accuracy(dev: list[dict], test: list[dict]) -> float | None:
    """The accuracy on ``test`` of the subject-blind rule fitted on ``dev``: pick the choice
    that is most often the right answer among the dev questions (a tie scores the expected
    accuracy of a uniform pick among the tied choices). None without test questions."""
    if not test:
        return None
    counts = Counter(answer_text(q) for q in dev)
    total = 0.0
    for q in test:
        best = max(counts[c] for c in q["choices"])
        tied = [c for c in q["choices"] if counts[c] == best]
        total += (answer_text(q) in tied) / len(tied)
    return total / len(test)


def lm_eval_task_config(task: str, data_file: Path) -> dict:
    """An lm-eval multiple-choice task over a local JSONL file (no hub access)."""
    return {
        "task": task,
        "tag": ["compress_recover_knowledge"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }


def build_knowledge_task(*, task: str, out_dir: str, num_choices: int, seed: int,
                         max_questions: int | None = None, content_free_mask: str | None = None,
                         max_answer_presence: float = DEFAULT_MAX_ANSWER_PRESENCE) -> dict:
    """Write ``<out_dir>/<task>.jsonl``, ``<task>.yaml``, its content-free variant (with
    ``content_free_mask``, config.yaml ``data.content_free_mask``; None: none) and
    ``manifest.json`` (with the answer balance, :func:`balanced_questions`)."""
    if task not in RELATIONS:
        raise ValueError(f"data.knowledge_tasks: unknown task {task!r}; known: {sorted(RELATIONS)}")
    relation = RELATIONS[task]
    questions, balance = balanced_questions(relation, num_choices=num_choices, seed=seed, max_questions=max_questions,
                                            max_answer_presence=max_answer_presence)
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", questions)
        # The YAML names the data file at its final place, where lm-eval will read it.
        config = lm_eval_task_config(task, final / f"{task}.jsonl")
        (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if content_free_mask is not None:
            write_variant(tmp, task, mask=content_free_mask)
        short = [shortfall("data.max_questions", f"{task} questions", max_questions, len(questions))] \
            if max_questions is not None and len(questions) < max_questions else []
        manifest = {"task": task, "questions": len(questions), "num_choices": num_choices,
                    "chance_accuracy": 1.0 / num_choices, "seed": seed, "source": relation.source,
                    "license": relation.license, "shortfalls": short,
                    "content_free_mask": content_free_mask, "balance": balance}
        manifest = write_manifest(tmp, manifest)
    return manifest
