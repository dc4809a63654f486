"""IDP's routing modes: the maths of each, and on the tiny model what each does to the pool.

The tiny random Llama's attention is nearly uniform (weights drawn at std 0.02 give
attention logits of ~0.1), so nothing can route on it; the routing tests scale its query
and key projections (``peaked``) so that attention is as peaked as a trained model's.
"""

from __future__ import annotations

import math

import pytest
import torch

from compress_recover.modeling import load_model
from compress_recover.recover.idp import IDPModel, load_idp, prepare
from compress_recover.recover.idp_config import IDPConfig
from compress_recover.prompt_choice import normalised_entropy
from compress_recover.recover.idp_maths import anneal, balance_loss, context_mask, router_logits, straight_through_gumbel
from compress_recover.recover.idp_routing import ROUTERS
from compress_recover.recover.train import train_loop

ENTROPY_FLOOR = 0.5  # the pool-entropy floor a joint pool must end above (H / log m), as the dev rule's


def test_straight_through_gumbel_passes_a_gradient_to_every_prompts_score():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 0.1, 0.2, 3.0]], requires_grad=True)
    values = torch.randn(2, 4)
    weights, choice = straight_through_gumbel(logits, temperature=1.0, noise=1.0,
                                              generator=torch.Generator().manual_seed(0))
    # the forward value is the one-hot of the choice ...
    torch.testing.assert_close(weights.detach(), torch.nn.functional.one_hot(choice, 4).float())
    (weights * values).sum().backward()
    # ... and every prompt's score gets a gradient, not only the winner's
    assert (logits.grad.abs() > 0).all()
    # without noise the choice is the inference rule's argmax
    _, choice = straight_through_gumbel(logits.detach(), temperature=0.1, noise=0.0)
    assert torch.equal(choice, logits.detach().argmax(dim=-1))


def test_balance_loss_is_one_for_an_even_pool_and_grows_as_it_collapses():
    even = torch.full((8, 4), 0.25)
    assert balance_loss(even, torch.full((4,), 0.25)).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).expand(8, 4)
    assert balance_loss(collapsed, torch.tensor([1.0, 0, 0, 0])).item() == pytest.approx(4 * 0.97)
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1]], requires_grad=True)
    balance_loss(probs, torch.tensor([1.0, 0, 0, 0])).backward()
    assert probs.grad[0, 0] > probs.grad[0, 1:].max()  # lowering the over-used prompt lowers the loss most


def test_entropy_anneal_router_and_context_span():
    assert normalised_entropy(torch.tensor([5, 5, 5, 5])) == pytest.approx(1.0)
    assert normalised_entropy(torch.tensor([20, 0, 0, 0])) == 0.0
    # the demo's Wanda pool: (0.8609 * 0.1498 + 0.1381 * 1.9797 + 0.00097 * 6.935) nats / ln 4
    assert normalised_entropy(torch.tensor([885, 142, 1, 0])) == pytest.approx(0.2951, abs=1e-4)
    assert anneal(0, 40, 1.0, 0.1) == 1.0 and anneal(40, 40, 1.0, 0.1) == pytest.approx(0.1)
    assert anneal(20, 40, 1.0, 0.1) == pytest.approx(math.sqrt(0.1)) and anneal(99, 40, 1.0, 0.1) == pytest.approx(0.1)
    attention = torch.tensor([[0.2, 0.1]])
    torch.testing.assert_close(router_logits(attention, torch.tensor([0.0, math.log(0.1)])),
                               torch.tensor([[math.log(0.2), 0.0]]))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])  # left padding
    assert context_mask(mask, 3).tolist() == [[0, 0, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]


def test_every_routing_mode_is_a_function_of_the_table():
    from compress_recover.recover.idp_config import ROUTINGS

    assert set(ROUTERS) == set(ROUTINGS)


@pytest.fixture(scope="module")
def peaked(tiny_checkpoint):
    """The tiny model with its query and key projections scaled by 5 (peaked attention)."""
    model, _ = load_model(tiny_checkpoint, device="cpu")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(5)
            layer.self_attn.k_proj.weight.mul_(5)
    return model


def _causal_pool(model, routing: str, context: int = 4) -> IDPModel:
    """A pool of four random 2-token prompts in training mode, choosing from the first ``context`` tokens."""
    prompts = torch.randn(4, 2, model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.5
    config = IDPConfig(pool_size=4, num_virtual_tokens=2, routing=routing, context_tokens=context)
    return IDPModel(model, prompts, config).train()


@pytest.mark.parametrize("routing", ["hard", "soft", "gumbel"])
def test_a_training_choice_reads_the_context_span_only_as_inference_does(peaked, routing):
    """The choice at a block's loss positions never reads the tokens it is trained to
    predict: changing a block after its first context_tokens leaves the choice and the
    router's logits as they were, and they are inference's on the span alone."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 450, (6, 12), generator=g)
    later = ids.clone()
    later[:, 4:] = torch.randint(10, 450, (6, 8), generator=g)
    earlier = ids.clone()
    earlier[:, :4] = torch.randint(10, 450, (6, 4), generator=g)
    outs = {}
    for name, block in (("ids", ids), ("later", later), ("earlier", earlier)):
        idp = _causal_pool(peaked, routing)  # gumbel's running centre and noise start afresh for each block
        outs[name] = idp(input_ids=block, labels=block)
    assert torch.equal(outs["ids"].selected, outs["later"].selected)
    torch.testing.assert_close(outs["ids"].scores, outs["later"].scores)
    assert not torch.allclose(outs["ids"].scores, outs["earlier"].scores)  # the span does decide
    if routing != "gumbel":  # uncentred: the training logits are inference's on the span
        with torch.no_grad():
            torch.testing.assert_close(idp.eval()(input_ids=ids[:, :4]).scores, outs["ids"].scores.detach())


@pytest.mark.parametrize("routing", ["hard", "soft", "gumbel"])
def test_the_loss_leaves_the_context_span_out_and_needs_a_token_after_it(peaked, routing):
    from types import SimpleNamespace

    from compress_recover.recover.objective import Objective
    from compress_recover.recover.train import objective_loss

    ids = torch.randint(10, 450, (3, 10), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1] * 10, [1] * 10, [0, 0] + [1] * 8])  # the last row left-padded
    idp = _causal_pool(peaked, routing)
    out = idp(input_ids=ids, attention_mask=mask, labels=ids)
    assert out.loss_mask.tolist() == [[0] * 4 + [1] * 6, [0] * 4 + [1] * 6, [0] * 6 + [1] * 4]
    # the span's labels do not reach the loss, the rest's do
    relabelled = ids.clone()
    relabelled[:, :4] = 7
    again = _causal_pool(peaked, routing)(input_ids=ids, attention_mask=mask, labels=relabelled)
    torch.testing.assert_close(again.loss, out.loss)
    relabelled[:, 8] = 7
    assert not torch.isclose(_causal_pool(peaked, routing)(input_ids=ids, attention_mask=mask,
                                                           labels=relabelled).loss, out.loss)
    # nor does the teacher's distribution there (distillation)
    teacher = torch.randn(3, 10, peaked.config.vocab_size, generator=torch.Generator().manual_seed(3))
    other = teacher.clone()
    other[:, :4] = 0.0
    kd = [objective_loss(_causal_pool(peaked, routing), ids, Objective(loss="distill"),
                         teacher=lambda input_ids, t=t: SimpleNamespace(logits=t))[1]["kd"] for t in (teacher, other)]
    assert kd[0] == pytest.approx(kd[1])
    with pytest.raises(ValueError, match=r"context_tokens: 10 leaves no token of a training block to learn from"):
        _causal_pool(peaked, routing, context=10)(input_ids=ids, labels=ids)


def test_a_context_span_that_leaves_no_token_is_refused_at_config_time():
    from compress_recover.registry import ConfigError

    for routing in ("hard", "soft", "gumbel"):
        with pytest.raises(ConfigError, match=rf"k\.context_tokens: 16 must be below .*\(16\): {routing} routing"):
            IDPConfig(routing=routing, context_tokens=16).check_budget("k", 16)
        IDPConfig(routing=routing, context_tokens=15).check_budget("k", 16)
    IDPConfig(routing="shard", context_tokens=16).check_budget("k", 16)  # chooses by the block index


def _sources(seed: int = 0, blocks: int = 200, length: int = 32):
    """Two distinct token sources: ids from two disjoint ranges of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(10, 150, (blocks, length), generator=g), torch.randint(300, 450, (blocks, length), generator=g)]


def _train(model, config: IDPConfig, texts, steps: int, seed: int = 0):
    idp = prepare(model, config, seed)
    blocks = idp.use_training_text(texts, seed)
    start = idp.prompts.detach().clone()
    train_loop(idp, blocks, steps=steps, batch_size=4, lr=config.lr, weight_decay=0.0, seed=seed, device="cpu")
    return idp, (idp.prompts.detach() - start).flatten(1).norm(dim=1)


@pytest.mark.slow
def test_a_curated_pool_routes_each_sources_held_out_blocks_to_its_own_prompt(peaked):
    config = IDPConfig(pool_size=2, num_virtual_tokens=2, routing="curated", sources=["corpus", "generated"])
    idp, moved = _train(peaked, config, _sources(), steps=60)
    record = idp.training_record()
    confusion = torch.tensor(record["after"]["confusion"])  # rows: source, columns: chosen prompt
    held = confusion.sum(dim=1)
    assert held.tolist() == [20, 20] and record["sources"]["trained_per_source"] == 180
    # each source's held-out blocks choose its own prompt more often than chance (1/2) ...
    assert (confusion.diag() / held > 0.5).all(), confusion
    # ... and each prompt is chosen for >= 20% of the mixed set
    assert (confusion.sum(dim=0) / held.sum() >= 0.2).all(), confusion
    assert (moved > 0).all()
    assert torch.isfinite(idp.score_offset).all() and idp.score_offset.abs().sum() > 0  # centred


def test_a_curated_prompts_content_learns_from_its_own_source_only(peaked):
    config = IDPConfig(pool_size=2, num_virtual_tokens=2, routing="curated", route_weight=0.0)
    idp = prepare(peaked, config, 0)
    a, b = _sources()
    idp.use_training_text([a, b], 0)
    idp.train()
    index = torch.tensor([0, 1])  # the first two training blocks come from source 0
    assert idp.block_sources[index].tolist() == [0, 0]
    out = idp(input_ids=torch.stack([a[0], a[1]]), labels=torch.stack([a[0], a[1]]), block_index=index)
    out.loss.backward()
    norms = idp.prompts.grad.flatten(1).norm(dim=1)
    assert norms[0] > 0 and norms[1] == 0


def _biased_pool(model, config: IDPConfig, seed: int = 0) -> IDPModel:
    """A pool whose prompt 0 draws the most attention from every input before training (as a
    question template draws one prompt on the real model): prompt 0 first learns, alone, to
    maximise the attention the inputs of both sources pay it."""
    idp = prepare(model, config, seed)
    inputs = torch.cat([s[:16, :16] for s in _sources()])
    optimizer = torch.optim.Adam([idp.prompts], lr=0.1)
    for _ in range(30):
        pool = idp.prompts.unsqueeze(0).expand(len(inputs), *idp.prompts.shape)
        _, attention = idp._selection_pass(pool, model.model.embed_tokens(inputs), torch.ones_like(inputs))
        optimizer.zero_grad()
        (-attention[:, 0].log().mean()).backward()
        idp.prompts.grad[1:] = 0
        optimizer.step()
    idp.prompts.grad = None
    return idp


@pytest.mark.slow
@pytest.mark.parametrize("routing", ["hard", "gumbel"])
def test_a_joint_pool_with_load_balancing_uses_every_prompt_where_hard_routing_collapses(peaked, routing):
    config = IDPConfig(pool_size=4, num_virtual_tokens=1, routing=routing, anneal_steps=30)
    idp = _biased_pool(peaked, config)
    blocks = idp.use_training_text([torch.cat(_sources())], 0)
    before = idp.routing_summary()
    assert before["counts"][0] >= 0.9 * before["spans"], before  # one prompt takes (nearly) every input
    start = idp.prompts.detach().clone()
    train_loop(idp, blocks, steps=40, batch_size=4, lr=config.lr, weight_decay=0.0, seed=0, device="cpu")
    moved = (idp.prompts.detach() - start).flatten(1).norm(dim=1)
    after = idp.routing_summary()
    chosen = torch.tensor(idp.history).sum(dim=0)
    if routing == "hard":  # the dead-expert failure: the losers (almost) never get a gradient
        assert moved[0] > 0 and chosen[0] >= 0.9 * chosen.sum(), chosen
        assert after["entropy"] < ENTROPY_FLOOR, after
    else:
        assert (moved > 0).all(), moved
        assert after["entropy"] >= ENTROPY_FLOOR, after
        assert (chosen > 0).all(), chosen  # every prompt trained on some examples


@pytest.mark.slow
def test_gumbel_training_passes_a_gradient_to_every_prompt_and_a_checkpoint_equals_a_shorter_run(peaked):
    config = IDPConfig(pool_size=3, num_virtual_tokens=2, routing="gumbel")
    idp = prepare(peaked, config, 0)
    ids = _sources()[0][:2]
    idp.train()
    out = idp(input_ids=ids, labels=ids)
    assert out.aux_loss is not None
    (out.loss + out.aux_loss).backward()
    assert (idp.prompts.grad.flatten(1).norm(dim=1) > 0).all()
    # the anneal runs on a fixed step count, so the state after n steps does not depend on the budget
    blocks = torch.cat(_sources())
    runs = []
    for steps in (3, 6):
        idp = prepare(peaked, config, 0)
        saved = {}
        train_loop(idp, blocks, steps=steps, batch_size=2, lr=config.lr, weight_decay=0.0, seed=0, device="cpu",
                   checkpoints={3: lambda losses, i=idp: saved.update(p=i.prompts.detach().clone(),
                                                                     o=i.score_offset.clone())})
        runs.append(saved)
    assert torch.equal(runs[0]["p"], runs[1]["p"]) and torch.equal(runs[0]["o"], runs[1]["o"])


def test_a_centred_pool_saves_and_loads_its_router(peaked, tmp_path):
    config = IDPConfig(pool_size=2, num_virtual_tokens=2, routing="curated")
    idp, _ = _train(peaked, config, _sources(), steps=4)
    idp.save_pretrained(str(tmp_path))
    again = load_idp(peaked, tmp_path)
    assert torch.equal(again.score_offset, idp.score_offset) and idp.score_offset.abs().sum() > 0
    ids = _sources()[1][:4, :16]
    with torch.no_grad():
        assert torch.equal(again.eval()(input_ids=ids).selected, idp.eval()(input_ids=ids).selected)


def test_a_curated_recovery_records_its_pool_in_the_manifest(tiny_checkpoint, text_dir, tmp_path):
    """The recover job on two texts: each prompt trains on its own, the manifest records the
    blocks per source, the choices per step, the routing before and after training and the
    held-out confusion table; the saved adapter carries its centred router."""
    from compress_recover.io import read_json, write_jsonl
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    other = tmp_path / "other"  # a second source: plain lists of numbers
    write_jsonl(other / "train.jsonl", [{"text": " ".join(str(n * k % 97) for n in range(400))} for k in range(1, 4)])
    config = {"method": "idp", "routing": "curated", "pool_size": 2, "num_virtual_tokens": 2}
    manifest = run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "adapter"), method_config=config,
                            key="recovery.methods[1]", text_dir=str(text_dir),
                            source_dirs=[str(text_dir), str(other)], steps=4, batch_size=2, seq_len=16,
                            runtime=Runtime(device="cpu", seed=0, threads=1))
    pool = manifest["pool"]
    assert manifest["texts"] == [str(text_dir), str(other)]
    assert pool["routing"] == "curated" and pool["centred"] and len(pool["trained_with"]) == 4
    assert sum(map(sum, pool["trained_with"])) == 4 * 2
    assert set(pool["before"]) >= {"counts", "entropy", "confusion"} and len(pool["after"]["confusion"]) == 2
    assert pool["sources"]["texts"] == ["corpus", "generated"] and pool["sources"]["trained_per_source"] > 0
    assert read_json(tmp_path / "adapter" / "manifest.json")["pool"] == pool
    model, _ = load_model(tiny_checkpoint, device="cpu")
    assert load_idp(model, tmp_path / "adapter").score_offset.tolist() == pool["score_offset"] or \
        torch.allclose(load_idp(model, tmp_path / "adapter").score_offset, torch.tensor(pool["score_offset"]), atol=1e-5)
    with pytest.raises(ValueError, match="needs the teacher's logits on one training text"):
        run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "kd"), method_config=config,
                     key="k", text_dir=str(text_dir), source_dirs=[str(text_dir), str(other)], steps=2, batch_size=2,
                     seq_len=16, objective={"loss": "distill"}, teacher_dir=str(tiny_checkpoint),
                     runtime=Runtime(device="cpu", seed=0, threads=1))
