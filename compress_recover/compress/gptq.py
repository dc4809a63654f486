"""GPTQ through GPTQModel (the maintained successor of AutoGPTQ).

Quantizes every decoder linear layer to ``bits`` with groups of ``group_size`` input
columns, calibrated on token blocks of the training text, and saves an AutoGPTQ-format
checkpoint (``checkpoint_format: gptq``) that GPTQModel, transformers+optimum and vLLM
load. Runs on CPU (GPTQModel's torch kernels) and CUDA.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .gptq_config import GPTQConfig

log = logging.getLogger(__name__)


# Calibration blocks per forward pass: all blocks have the same length and no padding, so
# batching changes nothing but the speed (fewer, larger matrix products).
CALIBRATION_BATCH = 8


def compress(*, model_dir: str, out_dir: Path, config: GPTQConfig, calibration, device: str,
             seed: int, dtype: str = "float32"):
    """Quantize ``model_dir`` into ``out_dir``; ``calibration`` is a (n, seq_len) LongTensor.

    The layers' forward passes (which collect the inputs GPTQ solves on) compute in
    ``dtype``, the pipeline's dtype, not GPTQModel's CPU default (bfloat16: slow where the
    CPU lacks bfloat16 instructions, less accurate everywhere, and machine-dependent).
    Returns the quantized model as it is in memory and the details for the manifest.
    """
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    from ..runtime import torch_dtype

    quant_config = QuantizeConfig(
        bits=config.bits, group_size=config.group_size, desc_act=config.desc_act, sym=config.sym,
        damp_percent=config.damp_percent, true_sequential=config.true_sequential,
        # Keep quantized layers in memory: the returned model is then the quantized one
        # (not disk-offloaded shells), and no temporary path ends up in the checkpoint.
        offload_to_disk=False,
    )
    examples = [{"input_ids": row.unsqueeze(0), "attention_mask": torch.ones_like(row).unsqueeze(0)}
                for row in calibration]
    log.info("GPTQ %s: loading %s on %s", config.slug(), model_dir, device)
    model = GPTQModel.load(model_dir, quant_config, device=device, dtype=torch_dtype(dtype))
    log.info("GPTQ %s: calibrating on %d blocks x %d tokens in %s", config.slug(), *calibration.shape, dtype)
    model.quantize(examples, batch_size=CALIBRATION_BATCH)
    model.save(str(out_dir))
    del model
    # GPTQModel's in-memory model after quantize() holds packed weights that its
    # kernels only read correctly after a reload, so hand back GPTQModel's own reload
    # of the checkpoint: what a GPTQModel user gets right after compression.
    from gptqmodel import BACKEND

    # (Its torch kernel computes in float16/bfloat16; the pipeline's transformers
    # loader computes in the configured dtype.)
    reloaded = GPTQModel.load(str(out_dir), device=device, backend=BACKEND.TORCH if device == "cpu" else BACKEND.AUTO)
    return reloaded.model, {"bits": config.bits, "group_size": config.group_size, "checkpoint_format": "gptq",
            "quantizer": "gptqmodel", "dtype": dtype, "calibration_batch": CALIBRATION_BATCH}
