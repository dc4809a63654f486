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


def compress(*, model_dir: str, out_dir: Path, config: GPTQConfig, calibration, device: str,
             seed: int):
    """Quantize ``model_dir`` into ``out_dir``; ``calibration`` is a (n, seq_len) LongTensor.

    Returns the quantized model as it is in memory and the details for the manifest.
    """
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig

    quant_config = QuantizeConfig(
        bits=config.bits, group_size=config.group_size, desc_act=config.desc_act, sym=config.sym,
        damp_percent=config.damp_percent,
        # Keep quantized layers in memory: the returned model is then the quantized one
        # (not disk-offloaded shells), and no temporary path ends up in the checkpoint.
        offload_to_disk=False,
    )
    examples = [{"input_ids": row.unsqueeze(0), "attention_mask": torch.ones_like(row).unsqueeze(0)}
                for row in calibration]
    log.info("GPTQ %s: loading %s on %s", config.slug(), model_dir, device)
    model = GPTQModel.load(model_dir, quant_config, device=device)
    log.info("GPTQ %s: calibrating on %d blocks x %d tokens", config.slug(), *calibration.shape)
    model.quantize(examples, batch_size=1)
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
            "quantizer": "gptqmodel"}
