"""The CUDA path (marker ``cuda``; ``make gpu-check`` runs these with the tiny workflow on
``device: cuda``): loading, one LoRA training step and GPTQ compression on the GPU, each
compared with the CPU. Skipped, with the reason, where torch sees no CUDA device."""

from __future__ import annotations

import pytest
import torch

from compress_recover.compress.compress import run_compression
from compress_recover.io import read_json
from compress_recover.modeling import load_model
from compress_recover.recover.recover import run_recovery
from compress_recover.runtime import Runtime
from conftest import RECOVERY_EXAMPLES
from gpu_check import cuda_missing


pytestmark = [pytest.mark.cuda, pytest.mark.skipif(cuda_missing() is not None, reason=f"no CUDA: {cuda_missing()}")]

IDS = torch.tensor([[5, 17, 42, 99, 120, 7, 300, 11, 64, 2]])


def _logits(model, device: str):
    with torch.no_grad():
        return model(input_ids=IDS.to(device)).logits.float().cpu()


def test_tiny_llama_on_cuda_gives_the_cpu_logits(tiny_checkpoint):
    on_cuda, _ = load_model(tiny_checkpoint, device="cuda", dtype="float32")
    on_cpu, _ = load_model(tiny_checkpoint, device="cpu", dtype="float32")
    assert next(on_cuda.parameters()).is_cuda
    torch.testing.assert_close(_logits(on_cuda, "cuda"), _logits(on_cpu, "cpu"), atol=1e-4, rtol=1e-4)


def test_a_lora_step_on_cuda_starts_from_the_cpu_loss(tiny_checkpoint, text_dir, tmp_path):
    """LoRA's B starts at zero, so the first step's loss is the base model's on the same
    (seeded) blocks: the CUDA run must match the CPU run there, then train to finite weights."""
    from safetensors.torch import load_file

    def run(device: str) -> dict:
        return run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(tmp_path / device),
                            method_config=RECOVERY_EXAMPLES["lora"], key="recovery.methods[1]",
                            text_dir=str(text_dir), steps=2, batch_size=2, seq_len=32,
                            runtime=Runtime(device=device, dtype="float32", seed=0, threads=1))

    cuda, cpu = run("cuda"), run("cpu")
    assert cuda["status"] == "ok" and cuda["device"].startswith("cuda")
    assert cuda["losses"][0] == pytest.approx(cpu["losses"][0], rel=1e-4)
    weights = load_file(tmp_path / "cuda" / "adapter_model.safetensors")
    assert weights and all(torch.isfinite(w).all() for w in weights.values())
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)  # the step moved B


def test_gptq_on_cuda_writes_a_checkpoint_whose_kernels_match_its_dense_weights(tiny_checkpoint, text_dir,
                                                                                tmp_path):
    out = tmp_path / "gptq"
    run_compression(model_dir=str(tiny_checkpoint), out_dir=str(out),
                    method_config={"method": "gptq", "bits": 4, "group_size": 32}, key="compression.methods[1]",
                    text_dir=str(text_dir), calibration_samples=8, calibration_seq_len=32,
                    runtime=Runtime(device="cuda", dtype="float32", seed=0, threads=1))
    manifest = read_json(out / "manifest.json")
    assert manifest["device"].startswith("cuda") and manifest["details"]["bits"] == 4
    kernel, _ = load_model(out, device="cuda")  # GPTQModel's CUDA kernels
    dense, _ = load_model(out, device="cpu", weights="dense")  # exactly the dequantized weights
    base, _ = load_model(tiny_checkpoint, device="cpu")
    on_kernel, on_dense, on_base = _logits(kernel, "cuda"), _logits(dense, "cpu"), _logits(base, "cpu")
    # CUDA kernels may compute in half precision: they agree with the dense weights to ~1e-3,
    # well inside what the quantization itself changed
    error = float((on_kernel - on_dense).norm() / on_dense.norm())
    quantization = float((on_dense - on_base).norm() / on_base.norm())
    assert error < 1e-2 and error < quantization, (error, quantization)
