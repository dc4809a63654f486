"""aggregate.stats.methods: the method and side of each recovery group."""

from __future__ import annotations

import pytest

from compress_recover.aggregate.stats.methods import Methods, method_of


def test_methods_map_groups_runs_and_sides():
    m = Methods({"lora-kd": "lora", "idp.seed0": "idp"}, {"lora": "parameters", "idp": "input",
                                                         "prompt_tuning": "input"})
    assert m.method("lora-kd") == "lora" and m.side("lora-kd") == "parameters"
    assert m.method("x", "idp.seed0") == "idp" == method_of("x", "idp.seed0", m.methods)
    assert m.method("unmapped") == "unmapped" and m.side("unmapped") is None
    assert m.named("input") == "idp, prompt_tuning" and Methods().named("input") == "none registered"
    with pytest.raises(ValueError, match="recovery 'unmapped' \\(method 'unmapped'\\) has no registered side"):
        m.registered_side("unmapped")
    curve = m.relabelled({"lora-kd@30": ("lora-kd", 30)})
    assert curve.method("lora-kd@30") == "lora" and curve.side("lora-kd@30") == "parameters"
