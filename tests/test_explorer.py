"""Issue 26: each question's status (computed once), the explorer's data, popularity, transitions and the loss model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from compress_recover.aggregate.analysis import run_analysis
from compress_recover.aggregate.stats.anatomy import fit_logit, popularity_percentiles
from compress_recover.aggregate.stats.budget import at_final_budget
from compress_recover.aggregate.explorer import explorer_counts, explorer_data
from compress_recover.aggregate.results import QUESTIONS
from compress_recover.aggregate.stats.questions import question_table
from compress_recover.aggregate.stats.status import GAINED, KEPT, LOST, NEVER, question_status
from compress_recover.data.facts import RELATIONS
from compress_recover.data.popularity import GIVEN, NONE, popularity_rows, run_popularity

METHODS = {"none": "none", "lora": "lora", "idp": "idp"}
SIDES = {"lora": "parameters", "idp": "input"}
TRAINED = {"lora": True, "idp": True}
BUDGET = {"steps": [4], "batch_size": 2, "seq_len": 16}
SCRIPT = "<script>window.__ran = 1</script>What is 2+2?"
TRAP = '<img src=x onerror="window.__ran = 2">'


def test_question_status_names_every_case_once():
    st = question_status([1, 1, 0, 0, 1, 1], [1, 0, 1, 0, 0, 0],
                         {"a": [1, 1, 1, 0, 1, 0], "b": [0, 1, 0, 0, 1, 1]})
    assert list(st.status) == [KEPT, LOST, GAINED, NEVER, LOST, LOST]
    assert list(st.won_back["a"]) == [False, True, False, False, True, False]
    assert list(st.won_back["b"]) == [False, True, False, False, True, True]
    assert list(st.broken["b"]) == [True, False, True, False, False, False]  # right when compressed, wrong after
    assert list(st.several) == [False, True, False, False, True, False]
    with pytest.raises(ValueError, match="recovery a has"):
        question_status([1, 0], [1, 0], {"a": [1]})


def _doc(task: str, i: int) -> dict:
    facts = RELATIONS[task].load()
    fact = facts[i * 7 % len(facts)]
    return {"subject": fact.subject, "answer_text": fact.answer, "question": f"Q {task} {fact.subject}?",
            "choices": [fact.answer, "W1", "W2", "W3"], "answer": 0}


def _row(doc_id: int, right: bool, doc: dict, rng, context: str | None = None, choices=None) -> dict:
    choices = choices or doc.get("choices") or ["4", "5", "6", "7"]
    scores = list(rng.normal(-3, 1, len(choices)))
    best = int(np.argmax(scores))
    if right:
        scores[0], scores[best] = scores[best], scores[0]
        scores[0] += 0.5
    elif best == 0:
        scores[0] -= 5
    context = context or f"Question {doc_id}?"
    return {"doc_id": doc_id, "doc": doc, "target": 0, "arguments": [[context, f" {c}"] for c in choices],
            "filtered_resps": [[s, False] for s in scores], "acc": float(int(np.argmax(scores)) == 0)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An analysis of two built relations and one custom task, base / compressed / two
    recoveries (idp with two seeds), answers drawn at random with a fixed seed."""
    root = tmp_path_factory.mktemp("explorer")
    rng = np.random.default_rng(7)
    n = {"capitals": 40, "city_country": 40, "my_facts": 12}
    docs = {t: [_doc(t, i) for i in range(k)] for t, k in n.items() if t in RELATIONS}
    docs["my_facts"] = [{"q": SCRIPT if i == 0 else f"{i}+{i}?", "a": 0} for i in range(n["my_facts"])]
    runs = [("none", "none", None), ("q", "none", None), ("q", "lora", 0), ("q", "idp", 0), ("q", "idp", 1)]
    p_right = {"none": 0.8, "q": 0.5}
    samples = []
    for comp, rec, seed in runs:
        run_name = "none" if rec == "none" else f"{rec}.seed{seed}"
        for task, k in n.items():
            p = p_right[comp] + (0.1 if rec != "none" else 0.0)
            rows = []
            for i in range(k):
                if task == "my_facts":
                    rows.append(_row(i, rng.random() < p, docs[task][i], rng, context=docs[task][i]["q"],
                                     choices=["4", TRAP, "6", "7"]))
                else:
                    rows.append(_row(i, rng.random() < p, docs[task][i], rng))
            path = root / f"{comp}-{run_name}-{task}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            labels = {"model": "m", "compression": comp, "recovery": rec, "seed": seed, "run": run_name,
                      "steps": None if rec == "none" else 4, "task": task}
            samples.append((labels, str(path)))
    tasks = []
    for task in ("capitals", "city_country"):
        (root / task).mkdir()
        (root / task / f"{task}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[task]))
        tasks.append(str(root / task))
    text = root / "text"
    text.mkdir()
    (text / "train.jsonl").write_text(json.dumps({"id": 0, "text": "Mild weather today."}) + "\n")
    (text / "heldout.jsonl").write_text("")
    (text / "leak_report.json").write_text(json.dumps({"passages_total": 1, "dropped_too_short": 0,
                                                       "dropped_leaks": 0, "train_passages": 1,
                                                       "heldout_passages": 0, "fact_pairs_checked": 1}))
    popularity = root / "popularity.csv"
    run_popularity(relations=["capitals", "city_country"], out_csv=str(popularity))
    out = root / "analysis"
    kwargs = dict(samples=samples, knowledge_tasks=list(n), task_dirs=tasks, text_dir=str(text), methods=METHODS,
                  sides=SIDES, trained=TRAINED, budget=BUDGET, seed=0, report={"bootstrap_iters": 200},
                  split={"dev_fraction": 0.25, "seed": 0})
    verdict = run_analysis(**kwargs, out_dir=str(out), popularity_csv=str(popularity)).verdict_json()
    return {"root": root, "out": out, "verdict": verdict, "kwargs": kwargs, "popularity": popularity}


@pytest.mark.slow
def test_the_explorer_counts_equal_the_flips_table(run):
    questions = QUESTIONS.read(run["out"])
    data = explorer_data(questions, run["verdict"]["final_steps"])
    counts = explorer_counts(data, "m/q", "test")
    flips = pd.read_csv(run["out"] / "flips.csv", keep_default_na=False)
    pooled = flips[(flips.task == "all_knowledge") & (flips.compression == "q")]

    def flip(category, recovery="", seed=""):
        row = pooled[(pooled.category == category) & (pooled.recovery == recovery) & (pooled.seed.astype(str) == seed)]
        assert len(row) == 1, (category, recovery, seed)
        return int(row["count"].iloc[0])

    assert counts.get(KEPT, 0) == flip("kept") and counts.get(LOST, 0) == flip("lost")
    assert counts.get(GAINED, 0) == flip("gained")
    assert counts.get("won back by lora", 0) == flip("recovered", "lora", "0")  # one seed: that seed
    assert counts.get("won back by idp", 0) == flip("recovered", "idp", "majority")  # two: the majority row
    assert counts.get("broken by idp", 0) == flip("broken", "idp", "majority")
    assert counts.get("won back by several", 0) == flip("recovered_by_several")
    assert flip("lost") > 5 and flip("recovered", "lora", "0") > 0  # the draw gives every status something to count
    # every test question of every knowledge task is a row, none dropped
    split = pd.read_csv(run["out"] / "split.csv", dtype={"doc_id": str})
    assert sum(q["s"] == "test" for q in data["questions"]) == int((split.split == "test").sum())
    assert sum(counts.get(s, 0) for s in (KEPT, LOST, GAINED, NEVER)) == int((split.split == "test").sum())


@pytest.mark.slow
def test_questions_csv_carries_what_the_explorer_shows(run):
    questions = QUESTIONS.read(run["out"])
    for column in ("question", "choices", "answer", "chosen", "choice_probs", "popularity", "popularity_measure"):
        assert column in questions, column
    built = questions[questions.task.isin(["capitals", "city_country"])]
    assert built.popularity.notna().all() and built.popularity_measure.str.contains("population").all()
    custom = questions[questions.task == "my_facts"]
    assert custom.popularity.isna().all() and (custom.popularity_measure == NONE).all()
    # a custom task's question is what the model was asked, kept as text
    first = custom[custom.doc_id == "0"].iloc[0]
    assert first.question == SCRIPT and TRAP in json.loads(first.choices) and first.answer == "4"
    probs = questions.choice_probs.map(json.loads)
    assert np.allclose(probs.map(sum), 1, atol=2e-3) and (probs.map(len) == 4).all()
    # the probability of the right choice is the listed probability of choice 0 (the target)
    assert np.allclose(probs.map(lambda p: p[0]), questions.p_right, atol=1e-3)
    data = explorer_data(questions, run["verdict"]["final_steps"])
    shown = next(q for q in data["questions"] if q["t"] == "my_facts" and q["id"] == "0")
    assert shown["q"] == SCRIPT and shown["pop"] is None and shown["pm"] == NONE
    # the KL to the base model, recomputed from the listed probabilities (4 decimals): 0 for
    # the base model, as the explorer shows it for every other model
    base = questions[(questions.compression == "none") & (questions.recovery == "none")]
    assert (base.kl_base == 0).all() and (questions.kl_base >= 0).all()
    ref = {(r.task, r.doc_id): np.array(json.loads(r.choice_probs)) for r in base.itertuples()}
    for r in questions[questions.compression != "none"].head(40).itertuples():
        p, q = ref[(r.task, r.doc_id)], np.array(json.loads(r.choice_probs))
        assert r.kl_base == pytest.approx(float((p * np.log(p / q)).sum()), abs=5e-3)
    for q in data["questions"]:
        for column, values in q["r"].items():
            row = questions[(questions.task == q["t"]) & (questions.doc_id == q["id"])
                            & (questions.model + "/" + questions.compression + "/" + questions.recovery == column)
                            & at_final_budget(questions, run["verdict"]["final_steps"])]
            assert values[6] == pytest.approx(round(float(row.kl_base.mean()), 4), abs=1e-4)
        break


def test_a_doc_may_give_its_own_popularity(tmp_path):
    rng = np.random.default_rng(0)
    rows = [_row(i, True, {"q": f"{i}?", "a": 0, "popularity": 10 * (i + 1)}, rng) for i in range(3)]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = question_table([({"model": "m", "compression": "none", "recovery": "none", "task": "mine"}, str(path))])
    assert list(table.popularity) == [10.0, 20.0, 30.0] and set(table.popularity_measure) == {GIVEN}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_row(0, True, {"q": "?", "a": 0, "popularity": "many"}, rng)) + "\n")
    with pytest.raises(ValueError, match="task mine: a doc's popularity field must be a number, got 'many'"):
        question_table([({"model": "m", "compression": "none", "recovery": "none", "task": "mine"}, str(bad))])


@pytest.mark.slow
def test_a_subject_missing_from_popularity_csv_is_an_error_naming_it(run, tmp_path):
    short = tmp_path / "popularity.csv"
    table = pd.read_csv(run["popularity"], keep_default_na=False)
    gone = json.loads(json.dumps(_doc("capitals", 3)))["subject"]
    table[table.subject != gone].to_csv(short, index=False)
    with pytest.raises(ValueError, match=r"popularity\.csv: no popularity for .* built task\(s\) \['capitals'\]"):
        run_analysis(**run["kwargs"], out_dir=str(tmp_path / "analysis"), popularity_csv=str(short))
    assert not (tmp_path / "analysis" / "questions.csv").exists()


def test_every_built_relation_has_a_measure_for_every_subject():
    rows = popularity_rows(list(RELATIONS))
    for name, relation in RELATIONS.items():
        subjects = {f.subject for f in relation.load()}
        mine = [r for r in rows if r["relation"] == name]
        assert {r["subject"] for r in mine} == subjects, name
        assert all(r["popularity"] == r["popularity"] for r in mine), name  # no subject without a figure today
    with pytest.raises(ValueError, match=r"no popularity measure for relation\(s\) \['nope'\]"):
        popularity_rows(["nope"])


@pytest.mark.slow
def test_transitions_and_the_loss_model_are_written(run):
    transitions = pd.read_csv(run["out"] / "transitions.csv", keep_default_na=False)
    flips = pd.read_csv(run["out"] / "flips.csv", keep_default_na=False)
    lost = flips[(flips.task == "all_knowledge") & (flips.category == "lost")]["count"].sum()
    assert transitions["count"].sum() == lost  # every lost question is one transition
    model = pd.read_csv(run["out"] / "loss_model.csv", keep_default_na=False)
    pre = model[model.status == "pre-specified"]
    assert list(pre.term) == ["popularity"] and list(pre.outcome) == ["lost"] and list(pre.fit) == ["total"]
    assert set(zip(model.fit, model.term)) == {("total", "popularity"), ("secondary", "popularity"),
                                               ("secondary", "logit(base confidence)")}
    # the noise null: on the lost outcome's confidence row only, at the compression's mean KL
    with_null = model[model.null_kl != ""]
    assert list(zip(with_null.outcome, with_null.term)) == [("lost", "logit(base confidence)")]
    assert with_null.null_kl.astype(float).gt(0).all()
    assert set(model.outcome) >= {"lost", "won back by lora", "won back by idp"}
    # the custom task's questions have no popularity: left out of the fit, and counted
    assert (model.without_popularity > 0).all()
    anatomy = pd.read_csv(run["out"] / "loss_anatomy.csv")
    assert set(anatomy.axis) == {"popularity", "base confidence"} and (anatomy.n >= anatomy.events).all()


def test_popularity_percentiles_rank_within_each_task():
    frame = pd.DataFrame({"task": ["a", "a", "a", "b", "b"], "popularity": [1.0, 100.0, 10.0, 5.0, float("nan")]})
    assert list(popularity_percentiles(frame).round(3).fillna(-1)) == [0.167, 0.833, 0.5, 0.5, -1]


def _simulate(rng, n_facts: int, beta_pop: float, beta_conf: float = -3.0):
    """Questions in pairs sharing a fact (correlated outcomes), three relations; lost drawn
    from the logistic model with a fact-level random effect."""
    facts = np.repeat(np.arange(n_facts), 2)
    relation = np.array(["r0", "r1", "r2"])[facts % 3]
    pop = rng.random(len(facts))
    conf = rng.uniform(0.4, 1.0, len(facts))
    shift = {"r0": 0.0, "r1": 0.5, "r2": -0.5}
    effect = rng.normal(0, 0.5, n_facts)[facts]
    logit = 1.0 + beta_pop * pop + beta_conf * conf + np.vectorize(shift.get)(relation) + effect
    lost = rng.random(len(facts)) < 1 / (1 + np.exp(-logit))
    return lost, pop, conf, relation, facts


def test_the_loss_model_recovers_a_known_effect_and_holds_its_level():
    """The clustered interval's calibration where the logistic form holds (data drawn from it,
    plus a fact-level random effect the fit lacks): it covers the popularity effect in about
    95% of draws, and under no effect the test rejects about 5% of the time. What the total
    and secondary fits' terms mean is checked on a truth outside the model: tests/test_anatomy.py."""
    rng = np.random.default_rng(2026)
    covered, rejected, signs = 0, 0, 0
    draws = 150
    for _ in range(draws):
        lost, pop, conf, rel, facts = _simulate(rng, 300, beta_pop=-1.0)
        fit = fit_logit(lost, {"popularity": pop, "base confidence": conf}, rel, facts)["popularity"]
        # the fitted model has no random effect: it estimates the marginal (population-averaged)
        # effect, the conditional one shrunk by 1 / sqrt(1 + 0.346 sigma^2) (Zeger, Liang and
        # Albert 1988), sigma = 0.5 here; a fact-clustered interval should cover that
        marginal = -1.0 / np.sqrt(1 + 0.346 * 0.5 ** 2)
        covered += fit["ci_low"] <= marginal <= fit["ci_high"]
        signs += fit["ci_high"] < 0
        lost, pop, conf, rel, facts = _simulate(rng, 300, beta_pop=0.0)
        null = fit_logit(lost, {"popularity": pop, "base confidence": conf}, rel, facts)["popularity"]
        rejected += null["p_value"] < 0.05
    assert covered / draws >= 0.88, covered
    assert rejected / draws <= 0.10, rejected
    assert signs / draws >= 0.5, signs  # power against a real effect


def test_the_loss_model_says_why_it_estimates_nothing():
    assert "not estimated: 3 events" in fit_logit([1, 1, 1] + [0] * 30, {"popularity": np.linspace(0, 1, 33)},
                                                  ["a"] * 33, range(33))["note"]
