# The path table, the reader's map: every path of the workflow, in provenance order.
# Included first (Snakefile): it also puts the package beside the Snakefile on the import path.
import sys

sys.path.insert(0, workflow.basedir)
from compress_recover.runs import STEP_MARK

# The download: the uncompressed model.
BASE_CHECKPOINT = "results/{model}/none/checkpoint"
CHECKPOINT = "results/{model}/{compression}/checkpoint"
ADAPTER = "results/{model}/{compression}/{recovery}/adapter"
# An intermediate budget checkpoint of a trained run (its evaluations use run <recovery>.step<n>).
CHECKPOINT_ADAPTER = (
    "results/{model}/{compression}/{recovery}%s{steps}/adapter" % STEP_MARK
)
# The recovery text the uncompressed model writes itself (recovery text: generated).
GENERATED_TEXT = "results/{model}/none/generated_text"
# The uncompressed model's top-k logits on each training text, shared by distilling recoveries.
TEACHER_LOGITS = {
    "corpus": "results/{model}/none/teacher_logits",
    "generated": "results/{model}/none/teacher_logits_generated",
}
EVAL_JSON = "results/{model}/{compression}/{recovery}/eval/{task}.json"
EVAL_SAMPLES = "results/{model}/{compression}/{recovery}/eval/{task}.samples.jsonl"
# Not an output: each task's scores kept for reuse when the evaluate job reruns (evaluate/reuse.py).
EVAL_CACHE = "results/{model}/{compression}/{recovery}/eval_cache"
COST = "results/{model}/{compression}/{recovery}/cost.json"
# A GGUF checkpoint's knowledge tasks scored by llama.cpp's runtime (the torch path is EVAL_*).
LLAMACPP_JSON = "results/{model}/{compression}/none/llamacpp/{task}.json"
LLAMACPP_SAMPLES = "results/{model}/{compression}/none/llamacpp/{task}.samples.jsonl"
KNOWLEDGE_TASK = "results/data/tasks/{task}"
PERPLEXITY_TASK = "results/data/tasks/heldout_ppl"
# A built knowledge task as few-shot runs see it: demonstrations from its dev questions.
FEWSHOT_TASK = "results/data/fewshot_tasks/{task}"
# Its format control (the few-shot method on the uncompressed model): demonstrations from the other relations.
FEWSHOT_CONTROL_TASK = "results/data/fewshot_control_tasks/{task}"
# A user's knowledge task's content-free variant (data.task_dirs subject_field): a YAML including theirs.
CONTENT_FREE_TASK = "results/data/content_free_tasks/{task}"
TEXT = "results/data/text"
# How well known each built question's subject is (the anatomy of the loss).
POPULARITY = "results/data/popularity.csv"
SUMMARY = "results/summary.csv"
SUMMARY_PARQUET = "results/summary.parquet"
ANALYSIS = "results/analysis"
# Every compression against its model, question by question, and the two paths of a GGUF.
LEVELS = "results/levels"
FIGURE = "results/figures/{name}.png"
REPORT = "results/report.html"
ATTENTION_CSV = "results/{model}/{compression}/attention/analysis.csv"
ATTENTION_PNG = "results/{model}/{compression}/attention/attention.png"
# Snakemake's per-job timings (benchmark:) sit beside each job's log, under logs/.
