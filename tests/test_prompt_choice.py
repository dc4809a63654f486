"""The prompt-choosing contract: declared once (compress_recover.prompt_choice), its facts on the config class."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from compress_recover.prompt_choice import PromptChooser, choice_field_of, chooses_from_context, forced_field
from compress_recover.recover import RECOVERY, choice_field
from compress_recover.recover.idp_config import IDPConfig
from compress_recover.registry import ConfigError, MethodConfig
from conftest import REPO


def test_the_model_that_chooses_satisfies_the_protocol_and_a_plain_one_does_not(tiny_checkpoint):
    import torch

    from compress_recover.modeling import load_model
    from compress_recover.recover.idp import IDPModel

    plain, _ = load_model(tiny_checkpoint, device="cpu")
    assert not isinstance(plain, PromptChooser)
    assert not chooses_from_context(plain) and choice_field_of(plain) is None
    idp = IDPModel(plain, torch.zeros(3, 2, plain.config.hidden_size), IDPConfig(pool_size=3, num_virtual_tokens=2))
    assert isinstance(idp, PromptChooser)
    assert chooses_from_context(idp) and choice_field_of(idp) == IDPConfig.choice_field == "idp_prompt"


def test_a_model_claiming_to_choose_without_the_members_is_refused():
    class Half:
        chooses_from_context = True
        choice_field = "x"

    assert not isinstance(Half(), PromptChooser)
    with pytest.raises(TypeError, match=r"lacks \['prompts', 'extend'\]"):
        chooses_from_context(Half())


def test_choice_field_comes_from_the_registered_config_class():
    assert choice_field("idp") == "idp_prompt"
    assert choice_field("lora") is None and choice_field("prompt_tuning") is None and choice_field("none") is None
    assert choice_field("no_such_method") is None
    assert MethodConfig.choice_field is None
    assert forced_field(choice_field("idp")) == "idp_prompt_loglikelihoods"


@pytest.mark.parametrize("method", RECOVERY.names())
def test_choice_field_is_a_class_fact_never_a_config_key(method):
    cls = RECOVERY[method].config_cls
    assert "choice_field" not in {f.name for f in dataclasses.fields(cls)}
    assert "choice_field" not in cls().params()
    with pytest.raises(ConfigError, match="unknown key"):
        RECOVERY.parse({"method": method, "choice_field": "x"}, "recovery.methods[0]")


def test_the_contract_and_the_registry_import_no_torch():
    code = ("import sys, compress_recover.prompt_choice, compress_recover.recover; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
