"""Rule ``evaluate_llamacpp``: a GGUF checkpoint scored by llama.cpp's own runtime.

The torch path (rule ``evaluate``) scores the GGUF's weights dequantized to float32: a
weights-only simulation. llama.cpp's CPU matmul also quantizes the activations (Q8_K for
K-quant weights, Q8_0/Q8_1 for the others) and tokenizes with the GGUF's own tokenizer:
what a llama.cpp user runs. This path scores the same lm-eval tasks through an lm-eval
``LM`` whose ``loglikelihood`` runs llama-cpp-python (``logits_all``: every position's
logits from one evaluation of context + continuation, the shared prefix of a question's
choices evaluated once), so its samples file has the torch path's format and the two
compare question by question (:mod:`compress_recover.aggregate.levels`).

Context and continuation are split as lm-eval's HF scorer splits them (trailing spaces of
the context move to the continuation; the continuation's tokens are those of the whole
string after the context's), with no BOS, as the HF scorer encodes. Each request records
whether llama.cpp's tokens equal the base tokenizer's (``tokens_match``): a GGUF whose
tokenizer differs (lm-eval #2887) shows there, not as lost knowledge.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..failures import OK
from ..runtime import Runtime, library_versions

log = logging.getLogger(__name__)

# tokens: the built knowledge questions are short (a question and one choice: under 64); a
# longer request of a user's task stops the job naming the task (its logits cost n_ctx x vocab floats)
CONTEXT = 1024


def _split(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's HF scorer's split: trailing spaces of the context go to the continuation."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def _log_softmax(rows):
    import numpy as np

    top = rows.max(axis=-1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=-1, keepdims=True))


class LlamaCppScorer:
    """Log-likelihoods of continuations under a GGUF in llama.cpp (``tokenizer``: the base
    model's HF tokenizer, only to record whether the tokens agree)."""

    def __init__(self, gguf_path: str | Path, tokenizer=None, threads: int = 1, n_ctx: int = CONTEXT):
        from ..compress.gguf_file import llama_cpp

        lib = llama_cpp()
        self.llm = lib.Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True,
                             n_threads=threads, n_threads_batch=threads, verbose=False)
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.mismatched = 0
        self.requests = 0
        self._evaluated: list[int] = []

    def close(self) -> None:
        self.llm.close()

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False) if text else []

    def score(self, context: str, continuation: str) -> tuple[float, bool]:
        """(log-likelihood of ``continuation`` after ``context``, whether it is the greedy continuation)."""
        import numpy as np

        context, continuation = _split(context, continuation)
        whole = self.tokens(context + continuation)
        ctx = self.tokens(context)
        cont = whole[len(ctx):]
        self.requests += 1
        if self.tokenizer is not None:
            self.mismatched += int(list(self.tokenizer(context + continuation, add_special_tokens=False).input_ids)
                                   != whole)
        if not ctx:  # lm-eval's HF scorer scores an empty context after its end-of-text token
            whole, ctx = [self.llm.token_eos(), *whole], [self.llm.token_eos()]
        if not cont:
            raise ValueError(f"empty continuation for context {context[-40:]!r}")
        if len(whole) > self.n_ctx:
            raise ValueError(f"{len(whole)} tokens exceed llama.cpp's context of {self.n_ctx}")
        # reuse the evaluated prefix (a question's choices share their context)
        keep = 0
        for a, b in zip(self._evaluated, whole[: len(ctx)]):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(ctx))
        if keep == 0:
            self.llm.reset()
        else:
            self.llm.n_tokens = keep
        self.llm.eval(whole[keep:])
        self._evaluated = list(whole)
        rows = np.asarray(self.llm.scores[len(ctx) - 1: len(whole) - 1], dtype=np.float64)
        logp = _log_softmax(rows)
        picked = logp[np.arange(len(cont)), cont]
        greedy = bool((rows.argmax(axis=-1) == np.asarray(cont)).all())
        return float(picked.sum()), greedy


def scoring_lm(scorer: LlamaCppScorer):
    """An lm-eval ``LM`` that scores multiple-choice requests with ``scorer``."""
    from lm_eval.api.model import LM

    class LlamaCppLM(LM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            out = []
            for r in requests:
                try:
                    out.append(scorer.score(*r.args))
                except ValueError as err:
                    raise ValueError(f"task {getattr(r, 'task_name', '?')} (llama.cpp path): {err}; set "
                                     "evaluation.llamacpp: false to score it with the torch path only") from err
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("the llama.cpp path scores multiple-choice knowledge tasks only")

        def generate_until(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("the llama.cpp path scores multiple-choice knowledge tasks only")

    return LlamaCppLM()


def run_llamacpp_evaluation(*, checkpoint_dir: str, tasks: list[dict], labels: dict, runtime: Runtime,
                            limit: int | None = None) -> dict[str, dict]:
    """Score ``checkpoint_dir``'s GGUF with llama.cpp on each task of ``tasks`` (dicts with
    ``task``, ``task_dir``, ``out_json``, ``out_samples``), zero-shot; one results and samples
    file per task, in the torch path's format."""
    from lm_eval import simple_evaluate
    from transformers import AutoTokenizer

    from ..compress.gguf_file import GGUF_NAME, llama_cpp_version
    from ..io import verify_folder
    from .evaluate import _write_task, preflight_task

    verify_folder(checkpoint_dir)
    gguf = Path(checkpoint_dir) / GGUF_NAME
    if not gguf.is_file():
        raise FileNotFoundError(f"{checkpoint_dir}: no {GGUF_NAME} for the llama.cpp path")
    runtime = runtime.start()
    prepared = [(spec, *preflight_task(spec["task"], spec["task_dir"], 0)) for spec in tasks]
    start = time.perf_counter()
    scorer = LlamaCppScorer(gguf, AutoTokenizer.from_pretrained(checkpoint_dir), threads=runtime.threads)
    load_s = time.perf_counter() - start
    lm = scoring_lm(scorer)
    out = {}
    for spec, manager, output_types in prepared:
        if not output_types or not output_types <= {"multiple_choice", "loglikelihood"}:
            raise ValueError(f"task {spec['task']}: the llama.cpp path scores multiple-choice tasks only "
                             f"(found {sorted(output_types)})")
        scorer.requests = scorer.mismatched = 0
        start = time.perf_counter()
        results = simple_evaluate(model=lm, tasks=[spec["task"]], task_manager=manager, num_fewshot=0, limit=limit,
                                  log_samples=True, random_seed=runtime.seed, numpy_random_seed=runtime.seed,
                                  torch_random_seed=runtime.seed, bootstrap_iters=1000)
        results["compress_recover"] = {**labels, "task": spec["task"], "status": OK, "path": "llama.cpp",
                                       "wall_time_s": round(time.perf_counter() - start, 2),
                                       "model_load_s": round(load_s, 2), "scorer": "llama.cpp",
                                       "requests": scorer.requests, "tokens_mismatched": scorer.mismatched,
                                       "num_fewshot": 0, "device": "cpu", "threads": runtime.threads,
                                       "library_versions": {**library_versions(),
                                                            "llama_cpp_python": llama_cpp_version()}}
        _write_task(results, spec["out_json"], spec["out_samples"], what=f"{labels} (llama.cpp)")
        log.info("%s (llama.cpp): %s; %d of %d requests tokenized otherwise than the base tokenizer",
                 spec["task"], results["results"].get(spec["task"]), scorer.mismatched, scorer.requests)
        out[spec["task"]] = results
    scorer.close()
    return out
