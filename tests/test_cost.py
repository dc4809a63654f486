"""cost.json: extra parameters, bytes, training time and latency of every model."""

from __future__ import annotations

import pytest
import torch

from compress_recover.evaluate import cost as cost_module
from compress_recover.evaluate.cost import run_cost, safetensors_parameters, timed
from compress_recover.io import read_json
from compress_recover.recover.recover import run_recovery
from compress_recover.runtime import Runtime

from conftest import RECOVERY_EXAMPLES

METHODS = RECOVERY_EXAMPLES
LABELS = {"model": "tiny", "compression": "none", "recovery": "x"}


def test_timed_reports_the_median_of_the_repeats(monkeypatch):
    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # durations 1, 3, 2 after the warm-up
    monkeypatch.setattr(cost_module.time, "perf_counter", lambda: next(clock))
    calls = []
    out = timed(lambda: calls.append(1), repeats=3, device="cpu", warmup=1)
    assert len(calls) == 4 and out["median_s"] == 2.0 and out["times_s"] == [1.0, 3.0, 2.0]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_cost_counts_the_adapter_and_times_batches_and_tokens(method, tiny_checkpoint, text_dir, tmp_path):
    adapter = tmp_path / "adapter"
    manifest = run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(adapter), method_config=METHODS[method],
                            key="recovery.methods[1]", text_dir=str(text_dir), steps=2, batch_size=2, seq_len=16,
                            runtime=Runtime(device="cpu", seed=0, threads=1))
    out = tmp_path / "cost.json"
    run_cost(checkpoint_dir=str(tiny_checkpoint), adapter_dir=str(adapter), text_dir=str(text_dir), out_json=str(out),
             labels=LABELS, batch_size=3, seq_len=12, new_tokens=4, repeats=2, runtime=Runtime(device="cpu", seed=0, threads=1))
    cost = read_json(out)
    # the stored adapter holds exactly the parameters that were trained
    assert cost["extra_params"] == manifest["trainable_parameters"] == safetensors_parameters(adapter)
    hidden = 64
    expected = {"prompt_tuning": 4 * hidden, "idp": 3 * 2 * hidden}.get(method)
    if expected is not None:
        assert cost["extra_params"] == expected
    assert cost["extra_bytes"] >= 4 * cost["extra_params"]
    assert cost["training_time_s"] == manifest["training_time_s"] > 0
    assert cost["latency"]["batch"]["batch_size"] == 3 and cost["latency"]["batch"]["median_s"] > 0
    assert len(cost["latency"]["batch"]["times_s"]) == 2
    gen = cost["latency"]["generation"]
    assert gen["new_tokens"] == 4 and gen["total_s"] > 0 and gen["prefill_s"] > 0
    assert cost["disk_bytes"] == cost["checkpoint_bytes"] + cost["extra_bytes"]


def test_cost_of_the_compressed_model_alone_has_no_extra(tiny_checkpoint, text_dir, tmp_path):
    out = tmp_path / "cost.json"
    run_cost(checkpoint_dir=str(tiny_checkpoint), adapter_dir=None, text_dir=str(text_dir), out_json=str(out),
             labels=LABELS, batch_size=2, seq_len=8, new_tokens=3, repeats=1, runtime=Runtime(device="cpu", seed=0, threads=1))
    cost = read_json(out)
    assert cost["extra_params"] == 0 and cost["extra_bytes"] == 0 and cost["training_time_s"] == 0.0
    with pytest.raises(ValueError, match="new_tokens"):
        run_cost(checkpoint_dir=str(tiny_checkpoint), adapter_dir=None, text_dir=str(text_dir),
                 out_json=str(tmp_path / "c2.json"), labels=LABELS, batch_size=2, seq_len=8, new_tokens=1,
                 repeats=1, runtime=Runtime(device="cpu", seed=0, threads=1))
    assert not (tmp_path / "c2.json").exists()


def test_latency_inputs_are_fixed_heldout_blocks(tiny_checkpoint, text_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    a = cost_module.latency_inputs(tok, text_dir, batch_size=5, seq_len=8)
    b = cost_module.latency_inputs(tok, text_dir, batch_size=5, seq_len=8)
    assert a.shape == (5, 8) and torch.equal(a, b)
