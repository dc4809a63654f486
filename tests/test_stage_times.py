"""benchmarks/stage_times.py: each stage's floor (tokens x FLOPs per token / matmul rate) on a
hand-made run folder whose arithmetic is known."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import stage_times  # noqa: E402

N = 1000  # the model's parameters
HEADER = "s\th:m:s\tmax_rss\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _timing(root: Path, rel: str, *seconds: float) -> None:
    _write(root / "logs" / rel, HEADER + "".join(f"{s}\t0:00:01\t1.0\n" for s in seconds))


def _manifest(root: Path, rel: str, manifest: dict) -> None:
    _write(root / "results" / rel / "manifest.json", json.dumps(manifest))


def _question(context: str, choices: list[str], **extra) -> str:
    return json.dumps({"arguments": [[context, c] for c in choices], **extra}) + "\n"


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run of model m: download, 3-bit GPTQ, one LoRA run, the teacher's logits, and
    the evaluation of the LoRA run (a question, a question with a 3-prompt ablation, a document)."""
    _timing(tmp_path, "m/none/download.benchmark.tsv", 5.0)
    _manifest(tmp_path, "m/none/checkpoint", {"parameters": N, "dtype": "float32"})
    _timing(tmp_path, "m/gptq-w3g64/compress.benchmark.tsv", 8.0)
    _manifest(tmp_path, "m/gptq-w3g64/checkpoint", {"calibration": {"tokens": 512}, "threads": 2, "device": "cpu"})
    _timing(tmp_path, "m/gptq-w3g64/lora.seed0/recover.benchmark.tsv", 30.0)
    _manifest(tmp_path, "m/gptq-w3g64/lora.seed0/adapter",
              {"status": "ok", "budget": {"steps": 10, "batch_size": 4, "seq_len": 8, "tokens": 320},
               "trainable_parameters": 50, "threads": 2, "device": "cpu"})
    _timing(tmp_path, "m/teacher_logits_corpus.benchmark.tsv", 2.0)
    _manifest(tmp_path, "m/none/teacher_logits", {"tokens": 640, "threads": 1, "device": "cpu"})
    _timing(tmp_path, "m/gptq-w3g64/lora.seed0/evaluate.benchmark.tsv", 12.0)
    _timing(tmp_path, "m/gptq-w3g64/lora.seed0/cost.benchmark.tsv", 3.0)
    eval_dir = tmp_path / "results/m/gptq-w3g64/lora.seed0/eval"
    _write(eval_dir / "capitals.samples.jsonl",
           _question("what is the capital of France", [" Paris", " Rome city"])  # 6 + 1 + 2 words, once
           + _question("capital of Peru", [" Lima", " Quito"],  # 3 + 1 + 1 words, under 3 forced prompts
                       idp_prompt=0, idp_prompt_loglikelihoods=[[-1, -2], [-1, -2], [-1, -2]]))
    _write(eval_dir / "heldout_ppl.samples.jsonl", json.dumps({"arguments": [["one two three four"]]}) + "\n")
    for task in ("capitals", "heldout_ppl"):
        _write(eval_dir / f"{task}.json", json.dumps({"compress_recover": {"status": "ok", "threads": 1, "device": "cpu"}}))
    return tmp_path


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_each_job_floor_is_tokens_times_flops_per_token(run):
    logs = run / "logs/m"
    floor = stage_times.job_floor(run, "compress", logs / "gptq-w3g64/compress.benchmark.tsv", words)
    assert (floor.tokens, floor.flops, floor.threads) == (512, 512 * 2 * 2 * N, 2)  # 2 passes x 2N
    floor = stage_times.job_floor(run, "recover", logs / "gptq-w3g64/lora.seed0/recover.benchmark.tsv", words)
    assert (floor.tokens, floor.flops) == (320, 320 * (4 * N + 2 * 50))  # frozen weights: 4N, trainable: 2T
    floor = stage_times.job_floor(run, "teacher_logits_corpus", logs / "teacher_logits_corpus.benchmark.tsv", words)
    assert floor.flops == 640 * 2 * N
    # evaluation: the context once per question plus each choice; the ablated question 3 times
    floor = stage_times.job_floor(run, "evaluate", logs / "gptq-w3g64/lora.seed0/evaluate.benchmark.tsv", words)
    assert floor.tokens == (6 + 1 + 2) + 3 * (3 + 1 + 1) + 4
    assert (floor.flops, floor.threads) == (floor.tokens * 2 * N, 1)
    for stage, rel in (("download", "none/download"), ("cost", "gptq-w3g64/lora.seed0/cost")):
        assert stage_times.job_floor(run, stage, logs / f"{rel}.benchmark.tsv", words) is None


def test_stage_floor_divides_by_the_rate_of_each_jobs_threads(run, capsys):
    rates = {1: 1.0, 2: 2.0}  # GFLOPS by threads

    def rate(device, threads, dtype):
        assert (device, dtype) == ("cpu", "float32")
        return rates[threads]

    found = stage_times.print_floors(run, words, rate)
    stages = found["stages"]
    assert stages["recover"]["floor_s"] == pytest.approx(320 * (4 * N + 2 * 50) / 2e9)
    assert stages["compress"]["floor_s"] == pytest.approx(512 * 4 * N / 2e9)
    assert stages["evaluate"]["floor_s"] == pytest.approx(28 * 2 * N / 1e9)
    assert stages["cost"]["floored"] == 0 and stages["download"]["floored"] == 0
    assert set(found["rates"]) == {("cpu", 1, "float32"), ("cpu", 2, "float32")}
    out = capsys.readouterr().out
    ratio = 30.0 / (320 * (4 * N + 2 * 50) / 2e9)
    assert f"{ratio:.1f}x" in out and "cost" in out and "no floor" in out


@pytest.mark.slow
def test_job_times_and_the_floor_lines_print(run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["stage_times.py", "--workdir", str(run), "--threads", "1"])
    monkeypatch.setattr(stage_times, "tokenizer_counter", lambda checkpoint: words)
    stage_times.main()
    out = capsys.readouterr().out
    assert "machine:" in out and "all timed" in out and "wall time" in out
    assert "floor per stage" in out and "time/floor" in out


def test_peak_memory_per_stage_is_the_largest_job_of_the_stage(tmp_path):
    _write(tmp_path / "logs/m/a/evaluate.benchmark.tsv", HEADER + "3.0\t0:00:03\t1200.5\n")
    _write(tmp_path / "logs/m/b/evaluate.benchmark.tsv", HEADER + "4.0\t0:00:04\t3151.0\n")
    _write(tmp_path / "logs/m/b/cost.benchmark.tsv", HEADER + "1.0\t0:00:01\t-\n")  # too short to sample
    _write(tmp_path / "logs/m/download.benchmark.tsv", HEADER + "2.0\t0:00:02\t646.25\n")
    assert stage_times.stage_peak_mb(tmp_path) == {"evaluate": 3151.0, "download": 646.25}
