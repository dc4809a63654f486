"""Rule ``perplexity_task``: a local lm-eval perplexity task over the held-out text."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl

PERPLEXITY_TASK = "heldout_ppl"


def build_perplexity_task(*, text_dir: str, out_dir: str) -> dict:
    """A local lm-eval ``loglikelihood_rolling`` task over the held-out passages
    (disjoint from the calibration and training text): word and byte perplexity."""
    import yaml

    heldout = Path(text_dir) / "heldout.jsonl"
    rows = read_jsonl(heldout)
    if not rows:
        raise ValueError(f"{heldout}: no held-out passage; set data.text.heldout_fraction > 0 or data.perplexity: false")
    final = Path(out_dir)
    task = PERPLEXITY_TASK
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / f"{task}.jsonl", rows)
        config = {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str((final / f"{task}.jsonl").resolve())}},
            "test_split": "test",
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"},
                            {"metric": "bits_per_byte"}],
            "metadata": {"version": 1.0},
        }
        (tmp / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        manifest = {"task": task, "passages": len(rows), "chars": sum(len(r["text"]) for r in rows),
                    "source": str(heldout), "corpus": read_json(Path(text_dir) / "leak_report.json")["corpus"]}
        write_json(tmp / "manifest.json", manifest)
    return manifest
