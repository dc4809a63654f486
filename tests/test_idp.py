"""Inference-time Dynamic Prompting: selection, routing, equivalence with prompt tuning."""

from __future__ import annotations

import pytest
import torch

from compress_recover.modeling import load_model
from compress_recover.recover.idp import IDPModel, load_idp
from compress_recover.recover.idp_maths import additive, prompt_scores, selection_mask
from compress_recover.recover.idp_config import IDPConfig

IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 300, 11], [9, 8, 7, 6, 5, 4, 3, 2]])


def _pool(model, m, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, model.config.hidden_size, generator=g) * 0.5


def _idp(checkpoint, m=3, n=2, **kw):
    model, _ = load_model(checkpoint, device="cpu")
    return IDPModel(model, _pool(model, m, n), IDPConfig(pool_size=m, num_virtual_tokens=n, **kw))


def test_scores_are_mean_attention_of_input_to_each_prompt():
    m, n, length = 3, 2, 2
    size = m * n + length
    attn = torch.zeros(1, 2, size, size)
    # input query 0 (row 6): head 0 looks at prompt 2, head 1 at prompt 0
    attn[0, 0, 6, 4:6] = 0.5
    attn[0, 1, 6, 0:2] = 0.3
    # input query 1 (row 7) is padding: whatever it attends to must not count
    attn[0, :, 7, 2:4] = 1.0
    scores = prompt_scores(attn, m, n, torch.tensor([[1, 0]]))
    assert scores.argmax(dim=-1).item() == 2
    torch.testing.assert_close(scores, torch.tensor([[0.15, 0.0, 0.25]]))


def test_selection_mask_isolates_prompts_and_lets_input_see_all():
    mask = selection_mask(2, 2, torch.tensor([[1, 1, 0]]))[0]
    assert mask[1, 0] and not mask[2, 1] and not mask[0, 1]  # prompt 0 causal, prompt 1 cannot see it
    assert mask[4, :4].all() and mask[5, :5].all()          # inputs see every prompt and earlier inputs
    assert not mask[5, 6] and not mask[6, 6]                 # the padded input is never attended to


def test_selection_follows_hf_attention_of_the_selection_layer(tiny_checkpoint):
    """IDP's choice equals the argmax computed from the HF model's own attention output."""
    idp = _idp(tiny_checkpoint, m=4, n=2).eval()
    with torch.no_grad():
        out = idp(input_ids=IDS)
        model = idp.model
        m, n = 4, 2
        emb = model.model.embed_tokens(IDS)
        x = torch.cat([idp.prompts.reshape(1, m * n, -1).expand(2, -1, -1), emb], dim=1)
        positions = torch.cat([torch.arange(n).repeat(m), n + torch.arange(IDS.shape[1])]).expand(2, -1)
        mask = additive(selection_mask(m, n, torch.ones_like(IDS)), emb.dtype)
        model.set_attn_implementation("eager")  # the reference reads HF's own attention probabilities
        hf = model(inputs_embeds=x, attention_mask=mask, position_ids=positions, output_attentions=True)
        expected = prompt_scores(hf.attentions[0], m, n, torch.ones_like(IDS))
    torch.testing.assert_close(out.attention, expected)
    torch.testing.assert_close(out.scores, expected.log())  # the router's logits: not centred (offset 0)
    assert torch.equal(out.selected, expected.argmax(dim=-1))
    assert model.config._attn_implementation == "eager"  # IDP restored what it found
    assert out.logits.shape == (2, n + IDS.shape[1], model.config.vocab_size)


def test_pool_of_one_is_exactly_prompt_tuning(tiny_checkpoint):
    from peft import PromptTuningConfig, get_peft_model

    idp = _idp(tiny_checkpoint, m=1, n=3).eval()
    base, _ = load_model(tiny_checkpoint, device="cpu")
    peft_model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(idp.prompts[0])
        expected = peft_model(input_ids=IDS).logits
        got = idp(input_ids=IDS).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_hard_routing_gives_gradient_only_to_the_selected_prompt(tiny_checkpoint):
    idp = _idp(tiny_checkpoint, m=4, n=2, context_tokens=4).train()
    ids = IDS[:1]
    out = idp(input_ids=ids, labels=ids)
    out.loss.backward()
    selected = out.selected.item()
    norms = idp.prompts.grad.flatten(1).norm(dim=1)
    assert norms[selected] > 0
    assert all(norms[j] == 0 for j in range(4) if j != selected)
    # and the trained forward equals the inference forward: the choice inference makes from
    # the block's first context_tokens, then the whole block under it
    with torch.no_grad():
        idp.eval()
        assert idp(input_ids=ids[:, :4]).selected.item() == selected
        torch.testing.assert_close(idp(input_ids=ids, selected=out.selected).logits, out.logits.detach())


def test_shard_routing_trains_prompt_of_the_block_index(tiny_checkpoint):
    idp = _idp(tiny_checkpoint, m=3, n=2, routing="shard").train()
    out = idp(input_ids=IDS, labels=IDS, block_index=torch.tensor([4, 6]))  # prompts 1 and 0
    out.loss.backward()
    norms = idp.prompts.grad.flatten(1).norm(dim=1)
    assert norms[0] > 0 and norms[1] > 0 and norms[2] == 0
    with pytest.raises(ValueError, match="block index"):
        idp(input_ids=IDS, labels=IDS)


def test_soft_routing_trains_the_whole_pool(tiny_checkpoint):
    idp = _idp(tiny_checkpoint, m=3, n=2, routing="soft", context_tokens=4).train()
    idp(input_ids=IDS, labels=IDS).loss.backward()
    assert (idp.prompts.grad.flatten(1).norm(dim=1) > 0).all()


def test_save_and_load_round_trip(tiny_checkpoint, tmp_path):
    idp = _idp(tiny_checkpoint, m=2, n=3, selection_layers=1).eval()
    idp.save_pretrained(tmp_path)
    model, _ = load_model(tiny_checkpoint, device="cpu")
    again = load_idp(model, tmp_path)
    assert again.idp_config == idp.idp_config
    with torch.no_grad():
        assert torch.equal(again(input_ids=IDS).logits, idp(input_ids=IDS).logits)


def test_selection_layers_must_leave_layers_to_run(tiny_checkpoint):
    with pytest.raises(ValueError, match="selection_layers"):
        _idp(tiny_checkpoint, m=2, n=2, selection_layers=2)


def _greedy_by_full_forward(idp, ids, mask, steps, selected):
    """Reference decoding: a full forward pass per token with the kept prompts forced."""
    for _ in range(steps):
        with torch.no_grad():
            logits = idp(input_ids=ids, attention_mask=mask, selected=selected).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return ids


def test_generation_with_cache_equals_full_forward_decoding(tiny_checkpoint):
    """Cached decoding gives the tokens of full forward passes (same kept prompt), also
    for a left-padded batch (as lm-eval's generate_until pads)."""
    idp = _idp(tiny_checkpoint, m=3, n=2).eval()
    pad = 0
    ids = torch.tensor([[pad, pad, 5, 17, 42, 99], [9, 8, 7, 6, 5, 4]])
    mask = (torch.arange(6)[None, :] >= torch.tensor([[2], [0]])).long()
    with torch.no_grad():
        selected = idp(input_ids=ids, attention_mask=mask).selected
    got = idp.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=[], pad_token_id=pad)
    expected = _greedy_by_full_forward(idp, ids, mask, 5, selected)
    assert got.shape == (2, 11)
    assert torch.equal(got, expected)
    # the left-padded row generates what it generates alone, unpadded
    alone = idp.generate(ids[:1, 2:], max_new_tokens=5, eos_token_id=[])
    assert torch.equal(alone[0, 4:], got[0, 6:])


def test_generation_stops_at_eos_and_pads(tiny_checkpoint):
    idp = _idp(tiny_checkpoint, m=2, n=2).eval()
    first = idp.generate(IDS, max_new_tokens=1, eos_token_id=[])[:, -1]
    out = idp.generate(IDS, max_new_tokens=4, eos_token_id=int(first[0]), pad_token_id=1)
    assert out[0, IDS.shape[1]] == first[0] and (out[0, IDS.shape[1] + 1:] == 1).all()
    with pytest.raises(TypeError, match="num_beams"):
        idp.generate(IDS, max_new_tokens=2, num_beams=2)


def test_lm_eval_generate_until_runs_on_idp(tiny_checkpoint):
    """lm-eval's own generate_until path (left padding, stop sequences) drives IDP's generate."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = load_model(tiny_checkpoint, device="cpu")
    idp = IDPModel(model, _pool(model, 2, 2), IDPConfig(pool_size=2, num_virtual_tokens=2)).eval()
    lm = HFLM(pretrained=idp, tokenizer=tokenizer, batch_size=2, device="cpu")
    contexts = ["the capital of", "a short and longer question about"]
    requests = [Instance("generate_until", None, (c, {"until": ["\n\n"], "max_gen_toks": 4}), i)
                for i, c in enumerate(contexts)]
    outputs = lm.generate_until(requests)
    for context, text in zip(contexts, outputs, strict=True):
        ids = torch.tensor([tokenizer(context)["input_ids"]])
        alone = idp.generate(ids, max_new_tokens=4, eos_token_id=tokenizer.eos_token_id)
        expected = tokenizer.decode(alone[0, ids.shape[1]:], skip_special_tokens=True).split("\n\n")[0]
        assert text == expected


def test_only_the_selection_layers_run_eager_attention(tiny_checkpoint):
    """The pool is scored with eager attention; the other layers keep the model's own
    implementation, and the logits agree with an all-eager model."""
    idp = _idp(tiny_checkpoint, m=3, n=2).eval()
    assert idp.model.config._attn_implementation == "sdpa"
    seen = []
    hooks = [layer.self_attn.register_forward_hook(
        lambda mod, args, out: seen.append(mod.config._attn_implementation)) for layer in idp.model.model.layers]
    with torch.no_grad():
        fast = idp(input_ids=IDS).logits
    for h in hooks:
        h.remove()
    assert seen == ["eager", "sdpa"] and idp.model.config._attn_implementation == "sdpa"
    idp.model.set_attn_implementation("eager")
    with torch.no_grad():
        torch.testing.assert_close(idp(input_ids=IDS).logits, fast, rtol=1e-4, atol=1e-4)
