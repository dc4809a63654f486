"""Rule ``generated_text``: recovery text written by the uncompressed model itself
(self-data distillation), once per model, leak-filtered exactly as the corpus is.

Prompts are either the openings of the corpus's training passages (``openings``: the
first ``opening_words`` words of a seeded-random passage, continued by the model; the
passage keeps its opening) or a short fixed list of neutral writing instructions
(``instructions``: through the model's chat template when it has one; the passage is the
model's answer alone). Sampling is seeded per batch, so a seed, a checkpoint and these
settings give the same text (on the same device and library versions).

Writes the same files as rule ``text`` (``train.jsonl``; ``heldout.jsonl``, empty: the
held-out perplexity text stays the corpus's; ``leak_report.json`` with the same keys, plus
the model and the generation settings) and ``manifest.json``.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from ..io import atomic_dir, read_jsonl, shortfall, write_json, write_jsonl, write_manifest
from .leaks import LeakFilter, pairs_from_tasks

log = logging.getLogger(__name__)

PROMPTS = ("openings", "instructions")
# Neutral on purpose: none asks for a place, a currency, a country or an element.
INSTRUCTIONS = (
    "Write a short story about a rainy afternoon.",
    "Describe how to cook a simple vegetable soup.",
    "Write a few paragraphs about why sleep matters.",
    "Explain how to plan a week of study.",
    "Write a letter to a friend about a new hobby.",
    "Describe a walk through a busy market.",
    "Write a short essay about learning from mistakes.",
    "Explain how a team can work well together.",
)


def generation_prompts(kind: str, *, count: int, seed: int, passages: list[str], opening_words: int) -> list[str]:
    """``count`` prompts of ``kind`` (PROMPTS), drawn with a generator seeded by ``seed``."""
    if kind == "instructions":
        return [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(count)]
    if kind != "openings":
        raise ValueError(f"data.generated.prompts: {kind!r} is not one of {list(PROMPTS)}")
    if not passages:
        raise ValueError("data.generated.prompts: openings needs training passages of the corpus; it has none")
    rng = random.Random(f"{seed}:generated-openings")
    return [" ".join(rng.choice(passages).split()[:opening_words]) for _ in range(count)]


def _model_inputs(tokenizer, prompt: str, kind: str) -> str:
    if kind == "instructions" and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt


def sample_texts(model, tokenizer, prompts: list[str], *, kind: str, max_new_tokens: int, temperature: float,
                 top_p: float, batch_size: int, seed: int, device: str) -> tuple[list[str], int]:
    """The model's seeded continuation of every prompt (an opening keeps its prompt in front);
    returns (texts, tokens generated)."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only batches: pad before the prompt
    texts, generated = [], 0
    for b, i in enumerate(range(0, len(prompts), batch_size)):
        batch = prompts[i:i + batch_size]
        enc = tokenizer([_model_inputs(tokenizer, p, kind) for p in batch], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        torch.manual_seed(random.Random(f"{seed}:generate:{b}").randrange(2**31))
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        for prompt, ids in zip(batch, new, strict=True):
            answer = tokenizer.decode(ids, skip_special_tokens=True)
            texts.append(" ".join(f"{prompt} {answer}".split()) if kind == "openings" else " ".join(answer.split()))
        log.info("generated %d / %d passages", min(i + batch_size, len(prompts)), len(prompts))
    return texts, generated


def filter_passages(texts: list[str], task_dirs: list[str], min_chars: int) -> tuple[list[dict], dict]:
    """Drop passages shorter than ``min_chars`` and those that name a question's subject with
    its answer (the corpus's leak filter); returns the kept rows and the counts."""
    leak_filter = LeakFilter(pairs_from_tasks(task_dirs))
    kept, dropped, short = [], [], 0
    for i, text in enumerate(texts):
        if len(text) < min_chars:
            short += 1
            continue
        hits = leak_filter.leaks(text)
        if hits:
            dropped.append({"id": i, "leaks": hits[:5]})
        else:
            kept.append({"id": i, "text": text})
    counts = {"passages_total": len(texts), "dropped_too_short": short, "dropped_leaks": len(dropped),
              "dropped_examples": dropped[:50], "fact_pairs_checked": len(leak_filter.pairs)}
    return kept, counts


def generate_text(*, checkpoint_dir: str, text_dir: str, task_dirs: list[str], out_dir: str, model_name: str,
                  generation: dict, seed: int, runtime) -> dict:
    """Write the model's own recovery text (see the module docstring); ``generation`` is
    config.yaml's ``data.generated``."""
    from ..modeling import load_model
    from ..runtime import library_versions

    g = generation
    runtime = runtime.start()
    passages = [row["text"] for row in read_jsonl(Path(text_dir) / "train.jsonl")]
    prompts = generation_prompts(g["prompts"], count=g["count"], seed=seed, passages=passages,
                                 opening_words=g["opening_words"])
    model, tokenizer = load_model(checkpoint_dir, device=runtime.device, dtype=runtime.dtype,
                                  trust_remote_code=runtime.trust_remote_code)
    model.eval()
    start = time.perf_counter()
    texts, tokens = sample_texts(model, tokenizer, prompts, kind=g["prompts"], max_new_tokens=g["max_new_tokens"],
                                 temperature=g["temperature"], top_p=g["top_p"], batch_size=g["batch_size"],
                                 seed=seed, device=runtime.device)
    seconds = time.perf_counter() - start
    kept, counts = filter_passages(texts, task_dirs, g["min_chars"])
    if not kept:
        raise ValueError(f"data.generated: none of the {len(texts)} passages {model_name} wrote survived the "
                         f"filters ({counts['dropped_too_short']} too short, {counts['dropped_leaks']} leaking)")
    report = {"corpus": "generated", "model": model_name, "provenance": {"checkpoint": checkpoint_dir,
                                                                        "prompts_from": text_dir},
              **counts, "train_passages": len(kept), "train_chars": sum(len(r["text"]) for r in kept),
              "heldout_passages": 0, "seed": seed, "generation": dict(g)}
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "train.jsonl", kept)
        write_jsonl(tmp / "heldout.jsonl", [])
        write_json(tmp / "leak_report.json", report)
        short = [shortfall("data.generated.count", "generated passages kept by the length and leak filters",
                           g["count"], len(kept))] if len(kept) < g["count"] else []
        write_manifest(tmp, {"model": model_name, "tokens_generated": tokens, "shortfalls": short,
                                           "wall_time_s": round(seconds, 2), "device": runtime.device,
                                           "dtype": runtime.dtype, "threads": runtime.threads,
                                           "library_versions": library_versions()})
    log.info("%s wrote %d passages (%d tokens) in %.1f s; kept %d (%d too short, %d leaking)", model_name,
             len(texts), tokens, seconds, len(kept), counts["dropped_too_short"], counts["dropped_leaks"])
    return report
