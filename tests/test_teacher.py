"""Cached teacher logits: computed once per (model, text), the top-k loss against the full one,
training from the cache equals training with the live teacher."""

from __future__ import annotations

import pytest
import torch

from compress_recover.modeling import load_model
from compress_recover.recover import RECOVERY
from compress_recover.recover.objective import Objective
from compress_recover.recover.teacher_logits import TeacherCache, teacher_logits, distill_kl_topk
from compress_recover.recover.train import distill_kl, train_loop
from compress_recover.runtime import Runtime
from compress_recover.tokens import token_blocks

CPU = Runtime(device="cpu", seed=0, threads=1)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_top_k_over_the_whole_vocabulary_is_the_full_kl(temperature):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 50, generator=g), torch.randn(2, 5, 50, generator=g) * 3
    top = teacher.topk(50, dim=-1)
    full = distill_kl(student, teacher, temperature)
    torch.testing.assert_close(distill_kl_topk(student, top.values, top.indices, temperature), full)


def test_top_k_approaches_the_full_kl_as_it_holds_the_teacher_mass():
    """The truncated loss differs from the full one by little when the kept tokens hold most of
    the teacher's probability, and the difference shrinks as k grows."""
    g = torch.Generator().manual_seed(1)
    student = torch.randn(4, 16, 400, generator=g)
    teacher = torch.randn(4, 16, 400, generator=g) * 4  # peaked, as a trained LM's next-token distribution
    full = float(distill_kl(student, teacher, 1.0))
    errors = []
    for k in (8, 32, 128, 400):
        top = teacher.topk(k, dim=-1)
        mass = float(torch.softmax(teacher, -1).gather(-1, top.indices).sum(-1).mean())
        errors.append(abs(float(distill_kl_topk(student, top.values, top.indices, 1.0)) - full) / full)
        if mass > 0.99:
            assert errors[-1] < 0.02, (k, mass, errors[-1])
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6


@pytest.fixture(scope="module")
def cache_dir(tiny_checkpoint, text_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "logits"
    vocab = load_model(tiny_checkpoint, device="cpu")[0].config.vocab_size
    manifest = teacher_logits(teacher_dir=str(tiny_checkpoint), text_dir=str(text_dir), out_dir=str(out),
                                      seq_len=16, top_k=vocab, runtime=CPU)
    assert manifest["top_k"] == vocab and manifest["top_k_mass_mean"] == pytest.approx(1.0, abs=1e-5)
    return out


def test_cache_holds_the_teacher_logits_of_every_block(cache_dir, tiny_checkpoint, text_dir):
    model, tokenizer = load_model(tiny_checkpoint, device="cpu")
    blocks = token_blocks(tokenizer, text_dir / "train.jsonl", 16)
    cache = TeacherCache(cache_dir, blocks)
    with torch.no_grad():
        logits = model(input_ids=blocks[[3, 0]]).logits
    values, indices = cache.topk_for(torch.tensor([3, 0]))
    torch.testing.assert_close(values, logits.gather(-1, indices.long()))
    torch.testing.assert_close(values[..., 0], logits.max(-1).values)
    with pytest.raises(ValueError, match="other training tokens"):
        TeacherCache(cache_dir, blocks[:-1])


def test_cache_refuses_a_changed_file(cache_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cache_dir, copy)
    data = bytearray((copy / "logits.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "logits.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        TeacherCache(copy)


@pytest.mark.parametrize("method", ["lora", "idp"])
def test_training_from_the_cache_equals_training_with_the_live_teacher(method, cache_dir, tiny_checkpoint, text_dir):
    from conftest import RECOVERY_EXAMPLES

    config = RECOVERY.parse(RECOVERY_EXAMPLES[method], "k")
    objective = Objective(loss="mix", distill_weight=0.5, temperature=2.0)
    losses = []
    for teacher_kind in ("live", "cache"):
        model, tokenizer = load_model(tiny_checkpoint, device="cpu")
        blocks = token_blocks(tokenizer, text_dir / "train.jsonl", 16)
        teacher = load_model(tiny_checkpoint, device="cpu")[0] if teacher_kind == "live" else TeacherCache(cache_dir,
                                                                                                           blocks)
        model = RECOVERY[method].load()(model, config, 0)
        losses.append(train_loop(model, blocks, steps=4, batch_size=2, lr=config.lr, weight_decay=0.0, seed=0,
                                 device="cpu", objective=objective, teacher=teacher))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5, abs=1e-6)
    assert len(set(losses[0])) > 1  # it trained
