"""Few-shot prompting as a recovery method: nothing to train and no weights.

Its run folder holds a manifest only (``k`` and what the demonstrations add to an input);
the evaluate job reads ``k`` from the run's config and builds the prompts with lm-eval
(:mod:`compress_recover.data.fewshot_task`), and the loader leaves the model as it is.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..data.fewshot_task import POOL_FIELD, POOL_FILE
from ..io import read_json, read_jsonl, verify_folder
from .fewshot_config import FewShotConfig

FEWSHOT_DELIMITER, TARGET_DELIMITER = "\n\n", " "  # lm-eval's defaults, which the built tasks keep


def demonstration_tokens(tokenizer, task_dirs: list[str], k: int) -> dict:
    """Per built few-shot task, the mean tokens one demonstration adds (question, target
    delimiter, answer, few-shot delimiter) over its demonstration pool (its dev questions; a
    format control's folder: the other relations' dev questions), and ``k`` times their
    mean over tasks: the input length few-shot prompting adds, on average."""
    per_task = {}
    for folder in task_dirs:
        verify_folder(folder)
        manifest = read_json(Path(folder) / "manifest.json")
        # a format control's folder keeps its demonstrations (the other relations') in POOL_FILE
        file = Path(folder) / (POOL_FILE if manifest.get("format_control") else f"{manifest['task']}.jsonl")
        pool = [r for r in read_jsonl(file) if r.get(POOL_FIELD)]
        lengths = [len(tokenizer(r["question"] + TARGET_DELIMITER + r["choices"][r["answer"]] + FEWSHOT_DELIMITER,
                                 add_special_tokens=False)["input_ids"]) for r in pool]
        per_task[manifest["task"]] = statistics.fmean(lengths) if lengths else 0.0
    mean = statistics.fmean(per_task.values()) if per_task else 0.0
    return {"tokens_per_demonstration": per_task, "input_tokens_added": round(k * mean)}


def build(*, config: FewShotConfig, checkpoint_dir: str, fewshot_task_dirs: list[str], runtime, **_):
    """(no model: nothing to save, the run's details): the demonstrations' count and the input they add."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir, trust_remote_code=runtime.trust_remote_code)
    return None, {"k": config.k, **demonstration_tokens(tokenizer, fewshot_task_dirs, config.k)}


def load(model, adapter_dir):
    """The model as it is: few-shot prompting adds no parameters."""
    model.eval()
    return model
