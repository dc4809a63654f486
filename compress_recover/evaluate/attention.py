"""Attention and activation analysis: where do recovered models look, and how far do
their hidden states move from the base model's?

For a fixed, seeded sample of knowledge questions (each run alone, no padding), per
decoder layer and per model (base, compressed, and each recovery of that compression):

- ``prompt_mass``: attention mass the input tokens put on prompt positions (the soft
  prompts of an input-side method: whatever positions stand before the input tokens;
  0 for models without a prompt), averaged over heads and input tokens;
- ``attention_entropy``: entropy (nats) of the input tokens' attention distributions;
- ``hidden_norm``: mean L2 norm of the layer's output at the input tokens;
- ``cosine_distance``: 1 - cosine similarity of those outputs to the base model's, token
  by token (0 for the base model itself).

Attention probabilities are read with hooks on every layer's ``self_attn`` (eager
attention), so the same code serves plain models, PEFT models and models that wrap one.

Rule ``attention`` runs ``workflow_scripts/attention.py`` -> :func:`run_attention_analysis`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from ..io import atomic_file, read_json, read_jsonl
from ..modeling import dense_on_cpu, load_model
from ..recover.load import adapter_failure, load_recovered
from ..runtime import Runtime

log = logging.getLogger(__name__)

METRICS = ("prompt_mass", "attention_entropy", "hidden_norm", "cosine_distance")


def _decoder(model):
    """The Llama-layout decoder (``.layers``) inside a plain, a PEFT or a wrapping model."""
    inner = model
    for attr in ("get_base_model",):
        if hasattr(inner, attr):
            inner = getattr(inner, attr)()
    if hasattr(inner, "model") and hasattr(inner.model, "model") and hasattr(inner.model.model, "layers"):
        inner = inner.model  # a wrapper module holding the HF causal LM as ``.model``
    if not hasattr(inner, "model") or not hasattr(inner.model, "layers"):
        raise TypeError(f"no decoder layers found in {type(model).__name__}")
    return inner


def trace(model, ids):
    """Per layer: attention probabilities (1, H, Q, K) and output hidden states (1, S, h)."""
    import torch

    hf = _decoder(model)
    hf.set_attn_implementation("eager")
    attns, hiddens, hooks = [], [], []
    for layer in hf.model.layers:
        hooks.append(layer.self_attn.register_forward_hook(lambda m, a, out: attns.append(out[1])))
        hooks.append(layer.register_forward_hook(
            lambda m, a, out: hiddens.append(out[0] if isinstance(out, tuple) else out)))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        for h in hooks:
            h.remove()
    if len(attns) != len(hf.model.layers) or any(a is None for a in attns):
        raise RuntimeError("could not read the attention probabilities of every layer")
    return attns, hiddens


def layer_metrics(attn, hidden, base_hidden, length: int) -> dict:
    """The four metrics of one layer for one question of ``length`` input tokens."""
    import torch

    probs = attn[0, :, -length:, :].float()  # input queries: (H, L, K)
    prompt = probs.shape[-1] - length
    mass = probs[..., :prompt].sum(-1).mean().item() if prompt > 0 else 0.0
    entropy = -(probs.clamp_min(1e-12).log() * probs).sum(-1).mean().item()
    h = hidden[0, -length:].float()
    out = {"prompt_mass": mass, "attention_entropy": entropy, "hidden_norm": h.norm(dim=-1).mean().item()}
    b = base_hidden[0, -length:].float()
    out["cosine_distance"] = (1 - torch.nn.functional.cosine_similarity(h, b, dim=-1)).mean().item()
    return out


def sample_questions(task_dir: str | Path, n: int, seed: int) -> list[str]:
    folder = Path(task_dir)
    rows = read_jsonl(folder / f"{folder.name}.jsonl")
    rng = random.Random(f"{seed}:attention")
    rows = rng.sample(rows, min(n, len(rows)))
    return [r["question"] for r in rows]


def run_attention_analysis(*, base_dir: str, checkpoint_dir: str, adapters: dict[str, str], task_dir: str,
                           questions: int, labels: dict, out_csv: str, out_png: str, runtime: Runtime):
    """``adapters``: recovery name -> adapter folder (or "" for the compressed model itself);
    an adapter whose training failed is left out (logged), having nothing to trace."""
    import pandas as pd
    import torch

    from ..shape import ModelShape, llama_like

    shape = ModelShape.of_checkpoint(base_dir)
    if not llama_like(shape):
        raise ValueError(f"report.attention_analysis: the attention analysis walks a Llama-style decoder "
                         f"(model.model.layers); {base_dir} is '{shape.model_type}': set it to false")
    adapters = trained_adapters(adapters)
    runtime = runtime.start()
    device = runtime.device
    load = {"device": device, "dtype": runtime.dtype, "trust_remote_code": runtime.trust_remote_code}
    texts = sample_questions(task_dir, questions, runtime.seed)
    base, tokenizer = load_model(base_dir, **load)
    inputs = [torch.tensor([tokenizer(t)["input_ids"]], device=device) for t in texts]
    base_hidden = [trace(base, ids)[1] for ids in inputs]
    variants = [("base", "none", None, base)]
    for rec, adapter in adapters.items():
        model, _ = load_recovered(checkpoint_dir, adapter or None, **load, weights=dense_on_cpu(device))
        variants.append((labels["compression"], rec, adapter, model))
    rows = []
    for compression, recovery, _, model in variants:
        for q, ids in enumerate(inputs):
            attns, hiddens = trace(model, ids)
            for layer, (attn, hidden) in enumerate(zip(attns, hiddens, strict=True)):
                metrics = layer_metrics(attn, hidden, base_hidden[q][layer], ids.shape[1])
                rows.extend({"model": labels["model"], "compression": compression, "recovery": recovery,
                             "question": q, "layer": layer, "metric": k, "value": v} for k, v in metrics.items())
        log.info("%s/%s: traced %d questions", compression, recovery, len(inputs))
    table = pd.DataFrame(rows).groupby(["model", "compression", "recovery", "layer", "metric"], sort=False,
                                       as_index=False)["value"].mean()
    with atomic_file(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    methods = {rec: _adapter_method(adapter) for rec, adapter in adapters.items()}
    plot_attention(table, out_png, title=f"{labels['model']} / {labels['compression']}: {len(inputs)} questions",
                   methods=methods)
    return table


def trained_adapters(adapters: dict[str, str]) -> dict[str, str]:
    """``adapters`` without those whose training failed (each named in the log with why)."""
    kept = {}
    for rec, adapter in adapters.items():
        failure = adapter_failure(adapter or None)
        if failure is None:
            kept[rec] = adapter
        else:
            log.warning("%s (%s): its training failed (%s); left out of the attention analysis", rec, adapter, failure)
    return kept


def _adapter_method(adapter: str) -> str:
    """The recovery method of a saved adapter (its manifest), ``none`` for no adapter."""
    manifest = Path(adapter) / "manifest.json" if adapter else None
    return read_json(manifest).get("method", "none") if manifest and manifest.exists() else "none"


def plot_attention(table, out_png: str, title: str, methods: dict[str, str] | None = None) -> None:
    """One panel per metric, one line per model: each recovery in its method's colour (as
    in every figure), the base model dotted and the compressed model dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..recover.colours import method_colour

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        sub = table[table.metric == metric]
        for (comp, rec), series in sub.groupby(["compression", "recovery"], sort=False):
            style = ":" if comp == "base" else "--" if rec == "none" else "-"
            ax.plot(series.layer, series.value, marker=".", linestyle=style, label=f"{comp}/{rec}",
                    color="black" if comp == "base" else method_colour((methods or {}).get(rec, rec)))
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("layer")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
