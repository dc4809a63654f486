"""Token blocks from the text stage's JSONL: calibration samples and training batches."""

from __future__ import annotations

import random
from pathlib import Path

from .io import read_jsonl, verify_folder


def token_stream(tokenizer, text_file: str | Path) -> list[int]:
    """All passages tokenized and joined with the end-of-sequence token between them (the
    text folder's files verified against its manifest's hashes first)."""
    verify_folder(Path(text_file).parent)
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for row in read_jsonl(text_file):
        ids.extend(tokenizer(row["text"], add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
    return ids


def token_blocks(tokenizer, text_file: str | Path, seq_len: int):
    """Non-overlapping ``seq_len`` blocks of the token stream, as a (n, seq_len) LongTensor."""
    import torch

    ids = token_stream(tokenizer, text_file)
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(f"{text_file}: {len(ids)} tokens, fewer than one block of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def calibration_blocks(tokenizer, text_file: str | Path, *, samples: int, seq_len: int, seed: int):
    """``samples`` distinct blocks chosen with a seeded generator (fewer if the text is short)."""
    blocks = token_blocks(tokenizer, text_file, seq_len)
    order = list(range(blocks.shape[0]))
    random.Random(f"{seed}:calibration").shuffle(order)
    return blocks[sorted(order[:samples])]


def budget_steps(steps) -> list[int]:
    """``recovery.budget.steps`` (an int, or a list for a budget curve) as a sorted list; the
    last is the final budget. Raises ValueError unless every value is a distinct positive int."""
    values = sorted(steps) if isinstance(steps, (list, tuple)) else [steps]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values) or len(
            set(values)) != len(values):
        raise ValueError(f"recovery.budget.steps: {steps!r} must be a positive integer or a list of distinct ones")
    return values


def batch_schedule(n_blocks: int, *, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Block indices for every step: seeded epochs over all blocks, reshuffled each epoch."""
    rng = random.Random(f"{seed}:train")
    schedule, pool = [], []
    for _ in range(steps):
        batch = []
        while len(batch) < batch_size:
            if not pool:
                pool = list(range(n_blocks))
                rng.shuffle(pool)
            batch.append(pool.pop())
        schedule.append(batch)
    return schedule
