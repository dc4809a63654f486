"""aggregate.tables and the report's perplexity note: perplexity recovery against the control run, like with like."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compress_recover.aggregate.stats.questions import ALL_KNOWLEDGE
from compress_recover.aggregate.report.frames import perplexity_gaps, perplexity_uncontrolled
from compress_recover.aggregate.tables import perplexity_recovery

PPL = {("none", "none", None): 50.0, ("q", "none", None): 150.0,
       ("q", "lora", 0): 58.0, ("q", "lora", 1): 62.0, ("none", "lora", 0): 30.0,   # control: lora on the base
       ("q", "pt", 0): 60.0, ("none", "pt", 0): 45.0,
       ("q", "idp", 0): 100.0}                                                        # no control run


def summary(ppl: dict, model: str = "m") -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "compression": c, "recovery": r, "seed": s, "task": "heldout_ppl",
                          "metric": "word_perplexity", "value": v} for (c, r, s), v in ppl.items()],
                        columns=["model", "compression", "recovery", "seed", "task", "metric", "value"])


def test_perplexity_recovery_subtracts_the_same_methods_drop_on_the_base_model():
    table = perplexity_recovery(pd.concat([summary(PPL), summary({("none", "none", None): 50.0,
                                                                  ("q", "none", None): 40.0,
                                                                  ("q", "lora", 0): 35.0}, "m2")]))
    rows = table.set_index(["model", "recovery"])
    lora = rows.loc[("m", "lora")]
    assert lora.perplexity == 60.0 and lora.perplexity_control == 30.0   # means over seeds
    assert lora.perplexity_recovery == pytest.approx((150 - 60) / 100)
    # the control's own drop (50 -> 30) is what training on the held-out domain does anyway
    assert lora.perplexity_recovery_controlled == pytest.approx((150 - 60 - (50 - 30)) / 100)
    pt = rows.loc[("m", "pt")]
    assert pt.perplexity_recovery == pytest.approx(0.9) and pt.perplexity_recovery_controlled == pytest.approx(0.85)
    idp = rows.loc[("m", "idp")]
    assert idp.perplexity_recovery == pytest.approx(0.5) and math.isnan(idp.perplexity_control)
    assert math.isnan(idp.perplexity_recovery_controlled)
    # compression did not raise perplexity: nothing to recover, both undefined
    m2 = rows.loc[("m2", "lora")]
    assert math.isnan(m2.perplexity_recovery) and math.isnan(m2.perplexity_recovery_controlled)
    assert perplexity_recovery(summary({})).empty


def test_perplexity_gap_compares_controlled_with_controlled_and_names_models_without_control():
    ppl = perplexity_recovery(summary(PPL))
    fractions = pd.DataFrame([
        # raw knowledge 0.2 against raw perplexity 0.9 would be a gap; controlled 0.5 vs 0.7 is not
        {"model": "m", "compression": "q", "recovery": "lora", "recovery_fraction": 0.2, "controlled_fraction": 0.5},
        # controlled knowledge 0.4 against controlled perplexity 0.85: a gap
        {"model": "m", "compression": "q", "recovery": "pt", "recovery_fraction": 0.6, "controlled_fraction": 0.4},
        # no control run: not compared, however large the raw gap
        {"model": "m", "compression": "q", "recovery": "idp", "recovery_fraction": 0.0,
         "controlled_fraction": float("nan")}]).assign(task=ALL_KNOWLEDGE)
    assert perplexity_gaps(fractions, ppl) == [{"compression": "q", "recovery": "pt", "perplexity": "85%",
                                                "knowledge": "40%"}]
    assert perplexity_uncontrolled(fractions, ppl) == ["q/idp"]
    assert perplexity_gaps(fractions, ppl.iloc[:0]) == [] and perplexity_uncontrolled(fractions, ppl.iloc[:0]) == []
