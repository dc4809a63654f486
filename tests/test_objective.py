"""Recovery objectives: next-token loss, distillation from the uncompressed model, the mix."""

from __future__ import annotations

import pytest
import torch

from compress_recover.compress.compress import run_compression
from compress_recover.modeling import load_model
from compress_recover.recover.load import load_recovered
from compress_recover.recover import RECOVERY
from compress_recover.recover.objective import Objective
from compress_recover.recover.recover import run_recovery
from compress_recover.recover.train import distill_kl, objective_loss
from compress_recover.registry import ConfigError
from compress_recover.runtime import Runtime

from conftest import RECOVERY_EXAMPLES

IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 300, 11], [9, 8, 7, 6, 5, 4, 3, 2]])
METHODS = RECOVERY_EXAMPLES


@pytest.fixture(scope="module")
def pruned_checkpoint(tiny_checkpoint, text_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "checkpoint"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out), method_config={"method": "magnitude",
                    "sparsity": 0.6}, key="compression.methods[1]", text_dir=str(text_dir), calibration_samples=2,
                    calibration_seq_len=16, runtime=Runtime(device="cpu", seed=0, threads=1))
    return out


def _prepared(checkpoint, method):
    model, _ = load_model(checkpoint, device="cpu")
    config = RECOVERY.parse(METHODS[method], "recovery.methods[1]")
    return RECOVERY[method].load()(model, config, 0).eval()


def test_objective_parsing_suffixes_and_errors():
    assert Objective.from_dict(None, "k").suffix() == ""
    assert Objective.from_dict({"loss": "distill"}, "k").suffix() == "-kd"
    mix = Objective.from_dict({"loss": "mix", "distill_weight": 0.25}, "k")
    assert mix.suffix() == "-mix0.25" and (mix.lm_weight, mix.kd_weight) == (0.75, 0.25) and mix.needs_teacher
    over = Objective.from_dict({"temperature": 2.0}, "k", base=mix)
    assert over.loss == "mix" and over.distill_weight == 0.25 and over.suffix() == "-mix0.25t2"
    assert not Objective().needs_teacher
    with pytest.raises(ConfigError, match=r"recovery.methods\[1\].objective.loss"):
        Objective.from_dict({"loss": "kd"}, "recovery.methods[1].objective")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['weight'\]"):
        Objective.from_dict({"weight": 0.5}, "k")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_last_input_positions_are_the_ones_the_lm_loss_scores(method, tiny_checkpoint):
    """Distillation compares the last L logits with the teacher's: they must be exactly the
    positions the method's own next-token loss uses (prompt methods put theirs first)."""
    model = _prepared(tiny_checkpoint, method)
    labels = IDS.clone()
    labels[:, 0] = -100  # prompt methods also score the first token (from the prompt): leave it out
    with torch.no_grad():
        out = model(input_ids=IDS, labels=labels)
        logits = out.logits[:, -IDS.shape[1]:]
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), IDS[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ce)


def test_distillation_is_zero_against_itself_and_mix_is_the_weighted_sum(tiny_checkpoint, pruned_checkpoint):
    teacher, _ = load_model(tiny_checkpoint, device="cpu")
    student = _prepared(tiny_checkpoint, "lora")  # LoRA starts at the identity (B = 0)
    with torch.no_grad():
        kd, parts = objective_loss(student, IDS, Objective(loss="distill"), teacher)
    assert abs(kd.item()) < 1e-6 and set(parts) == {"kd"}
    student = _prepared(pruned_checkpoint, "lora")
    mix = Objective(loss="mix", distill_weight=0.3, temperature=2.0)
    with torch.no_grad():
        loss, parts = objective_loss(student, IDS, mix, teacher)
        manual = distill_kl(student(input_ids=IDS).logits, teacher(input_ids=IDS).logits, 2.0)
    assert parts["kd"] > 1e-4 and parts["lm"] > 0
    torch.testing.assert_close(torch.tensor(parts["kd"]), manual)
    torch.testing.assert_close(loss, torch.tensor(0.7 * parts["lm"] + 0.3 * parts["kd"]))
    with pytest.raises(ValueError, match="teacher"):
        objective_loss(student, IDS, mix, None)


@pytest.mark.parametrize("method", ["lora", "idp"])
def test_distillation_training_moves_the_compressed_model_toward_the_teacher(method, tiny_checkpoint,
                                                                             pruned_checkpoint, text_dir, tmp_path):
    from transformers import AutoTokenizer

    from compress_recover.tokens import token_blocks

    out = tmp_path / "adapter"
    manifest = run_recovery(checkpoint_dir=str(pruned_checkpoint), out_dir=str(out), method_config=METHODS[method],
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=25, batch_size=2, seq_len=32,
                            runtime=Runtime(device="cpu", seed=0, threads=1), objective={"loss": "distill"},
                            teacher_dir=str(tiny_checkpoint))
    assert manifest["objective"]["loss"] == "distill" and manifest["teacher"] == str(tiny_checkpoint)
    blocks = token_blocks(AutoTokenizer.from_pretrained(tiny_checkpoint), text_dir / "heldout.jsonl", 32)[:8]
    teacher, _ = load_model(tiny_checkpoint, device="cpu")
    untrained = _prepared(pruned_checkpoint, method)  # the same seeded initialisation
    recovered, _ = load_recovered(pruned_checkpoint, out, device="cpu")
    with torch.no_grad():
        target = teacher(input_ids=blocks).logits
        before = distill_kl(untrained(input_ids=blocks).logits[:, -blocks.shape[1]:], target, 1.0).item()
        after = distill_kl(recovered(input_ids=blocks).logits[:, -blocks.shape[1]:], target, 1.0).item()
    assert after < 0.9 * before, (before, after)


def test_distillation_without_teacher_fails_before_training(pruned_checkpoint, text_dir, tmp_path):
    with pytest.raises(ValueError, match=r"recovery.methods\[1\].objective.*teacher"):
        run_recovery(checkpoint_dir=str(pruned_checkpoint), out_dir=str(tmp_path / "a"), method_config=METHODS["lora"],
                     key="recovery.methods[1]", text_dir=str(text_dir), steps=2, batch_size=2, seq_len=32,
                     runtime=Runtime(device="cpu", seed=0, threads=1), objective={"loss": "mix"})
    assert not (tmp_path / "a").exists()
