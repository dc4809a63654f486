"""Loading a saved PEFT adapter folder (the adapter loader of every peft-based method)."""

from __future__ import annotations

from pathlib import Path


def load(model, adapter_dir: str | Path):
    """``model`` with the PEFT adapter in ``adapter_dir`` (safetensors weights), frozen, in eval mode."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    return model
