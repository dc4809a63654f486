"""Rule ``teacher_logits``: the uncompressed model's next-token logits on the training text,
computed once per (model, text, block length) and shared by every distilling recovery job.

The cache keeps, for every position of every training block, the teacher's ``top_k``
largest logits and their token ids (safetensors: ``values`` float32 and ``indices``
int32, each (blocks, seq_len, top_k), and ``blocks``, the token ids they were computed on,
so a job reading the cache checks it trains on the same tokens). Distillation then uses
the teacher distribution restricted to those ``k`` tokens and renormalised
(:func:`distill_kl_topk`); with ``k`` = the vocabulary it is exactly the full KL (tested),
and the manifest records how much of the teacher's probability the kept tokens hold.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..io import atomic_dir, read_json, sha256_file, write_json
from ..modeling import load_model
from ..runtime import Runtime, library_versions
from ..tokens import token_blocks

log = logging.getLogger(__name__)

LOGITS_FILE = "logits.safetensors"
MANIFEST = "manifest.json"


def distill_kl_topk(student_logits, values, indices, temperature: float):
    """Mean over tokens of KL(teacher_k || student) times temperature**2, where teacher_k is the
    teacher's softened distribution over its ``k`` largest logits (``values``, token ids
    ``indices``; (B, L, k)), renormalised, and the student's log-probabilities are those of
    its full softened distribution (``student_logits`` (B, L, V)) at the same tokens."""
    import torch
    import torch.nn.functional as F

    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1).gather(-1, indices.long())
    teacher = F.log_softmax(values.float() / t, dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    return kl.mean() * t * t if kl.numel() else torch.zeros((), device=student_logits.device)


class TeacherCache:
    """The cached top-k teacher logits of every training block (see the module docstring)."""

    def __init__(self, folder: str | Path, blocks=None, device: str = "cpu"):
        from safetensors.torch import load_file

        folder = Path(folder)
        self.folder = folder
        self.manifest = read_json(folder / MANIFEST)
        expected = self.manifest.get("sha256")
        if expected and sha256_file(folder / LOGITS_FILE) != expected:
            raise ValueError(f"{folder / LOGITS_FILE}: its sha256 differs from the manifest's; recompute it "
                             "(rule teacher_logits)")
        tensors = load_file(str(folder / LOGITS_FILE))
        self.values, self.indices, self.blocks = tensors["values"], tensors["indices"], tensors["blocks"]
        if blocks is not None and not (blocks.shape == self.blocks.shape and bool((blocks == self.blocks).all())):
            raise ValueError(f"{folder}: the cached teacher logits were computed on other training tokens "
                             f"({tuple(self.blocks.shape)} blocks) than this job's ({tuple(blocks.shape)}); "
                             "recompute them (rule teacher_logits)")
        self.device = device

    @property
    def top_k(self) -> int:
        return int(self.values.shape[-1])

    def topk_for(self, block_index):
        """(values, indices), each (B, seq_len, k), of the blocks ``block_index``."""
        idx = block_index.long().cpu()
        return self.values[idx].to(self.device), self.indices[idx].to(self.device)


def teacher_logits(*, teacher_dir: str, text_dir: str, out_dir: str, seq_len: int, top_k: int,
                           runtime: Runtime, batch_size: int = 8) -> dict:
    """Run the uncompressed model over every ``seq_len`` block of the training text once and
    keep the ``top_k`` largest logits of every position; write them with a manifest."""
    import torch
    from safetensors.torch import save_file

    if top_k < 1:
        raise ValueError(f"teacher top_k must be >= 1, got {top_k}")
    runtime = runtime.start()
    model, tokenizer = load_model(teacher_dir, device=runtime.device, dtype=runtime.dtype,
                                  trust_remote_code=runtime.trust_remote_code)
    model.eval()
    vocab = int(model.config.vocab_size)
    k = min(top_k, vocab)
    blocks = token_blocks(tokenizer, Path(text_dir) / "train.jsonl", seq_len)
    values, indices, mass = [], [], []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, blocks.shape[0], batch_size):
            logits = model(input_ids=blocks[i:i + batch_size].to(runtime.device)).logits.float()
            top = logits.topk(k, dim=-1)
            values.append(top.values.cpu())
            indices.append(top.indices.to(torch.int32).cpu())
            mass.append(torch.softmax(logits, dim=-1).gather(-1, top.indices).sum(-1).flatten().cpu())
    seconds = time.perf_counter() - start
    mass = torch.cat(mass)
    with atomic_dir(out_dir) as tmp:
        save_file({"values": torch.cat(values).contiguous(), "indices": torch.cat(indices).contiguous(),
                   "blocks": blocks.contiguous()}, str(tmp / LOGITS_FILE))
        manifest = {
            "teacher": teacher_dir, "text": text_dir, "seq_len": seq_len, "top_k": k, "vocab_size": vocab,
            "blocks": int(blocks.shape[0]), "tokens": int(blocks.numel()),
            "top_k_mass_mean": round(float(mass.mean()), 6), "top_k_mass_min": round(float(mass.min()), 6),
            "sha256": sha256_file(tmp / LOGITS_FILE), "wall_time_s": round(seconds, 2),
            "device": runtime.device, "dtype": runtime.dtype, "threads": runtime.threads,
            "library_versions": library_versions(),
        }
        write_json(tmp / MANIFEST, manifest)
    log.info("teacher logits: %d blocks x %d tokens, top %d of %d (mean mass %.4f) in %.1f s", blocks.shape[0],
             seq_len, k, vocab, manifest["top_k_mass_mean"], seconds)
    return manifest
