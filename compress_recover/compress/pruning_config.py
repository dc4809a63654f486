"""Configs of the pruning methods (magnitude, Wanda, SparseGPT), kept import-light."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..registry import ConfigError, MethodConfig

N_OF_M = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class PruningConfig(MethodConfig):
    """Unstructured (``sparsity``) or semi-structured (``n_m``) weight pruning.

    Exactly one of the two is set:

    - ``sparsity: 0.5``: that fraction of every pruned layer's weights is zero.
    - ``n_m: "2:4"``: in every group of M consecutive weights along the input
      dimension at most N are nonzero (2:4 is NVIDIA's sparse tensor-core pattern).

    Pruned layers: every linear layer of the decoder blocks (attention and MLP
    projections); embeddings, norms and the LM head stay dense.
    """

    sparsity: float | None = None
    n_m: str | None = None

    def nm(self) -> tuple[int, int] | None:
        if self.n_m is None:
            return None
        n, m = N_OF_M.match(self.n_m).groups()
        return int(n), int(m)

    def divisors(self) -> dict[str, int]:
        return {"n_m": self.nm()[1]} if self.n_m is not None else {}

    def target_sparsity(self) -> float:
        if self.n_m is not None:
            n, m = self.nm()
            return 1 - n / m
        return float(self.sparsity)

    def slug(self) -> str:
        if self.name:
            return self.name
        if self.n_m is not None:
            n, m = self.nm()
            return f"{self.method}-{n}of{m}"
        pct = f"{self.sparsity * 100:.4g}".replace(".", "p")
        return f"{self.method}-s{pct}"

    def merge_effect(self, details: dict) -> dict:
        return {"merge_breaks_sparsity": True,
                "note": f"merging would densify layers pruned to {details['pruned_layers_sparsity']:.3f} sparsity"}

    def check_shape(self, key: str, model: str, shape) -> None:
        from ..shape import check_family

        check_family(key, model, shape, self.method, "prunes the linear layers of")

    def check(self, key: str) -> None:
        if (self.sparsity is None) == (self.n_m is None):
            raise ConfigError(f"{key}: set exactly one of 'sparsity' (unstructured ratio) or 'n_m' (e.g. '2:4')")
        if self.sparsity is not None and not 0 < self.sparsity < 1:
            raise ConfigError(f"{key}.sparsity: {self.sparsity} must be in (0, 1)")
        if self.n_m is not None:
            match = N_OF_M.match(self.n_m)
            if not match:
                raise ConfigError(f"{key}.n_m: {self.n_m!r} is not of the form 'N:M' (e.g. '2:4')")
            n, m = map(int, match.groups())
            if not 0 < n < m:
                raise ConfigError(f"{key}.n_m: {self.n_m!r} needs 0 < N < M (N nonzeros kept per M weights)")


@dataclass(frozen=True)
class MagnitudeConfig(PruningConfig):
    """Magnitude pruning: drop the smallest |w| of each layer (or of each N:M group).

    No calibration data. Example: ``{method: magnitude, sparsity: 0.5}``.
    """

    method = "magnitude"
    entry_point = "compress_recover.compress.pruning:compress_magnitude"


@dataclass(frozen=True)
class WandaConfig(PruningConfig):
    """Wanda (Sun et al. 2023, https://arxiv.org/abs/2306.11695) through llm-compressor.

    Scores |w| x ||x|| (input activation norm) and prunes per output row, layer by
    layer on calibration activations. Example: ``{method: wanda, sparsity: 0.5}``.
    """

    method = "wanda"
    entry_point = "compress_recover.compress.pruning:compress_llmcompressor"
    uses_calibration = True
    reference_job_s = 37.0  # compress_recover.estimate's reference machine


@dataclass(frozen=True)
class SparseGPTConfig(PruningConfig):
    """SparseGPT (Frantar & Alistarh 2023, https://arxiv.org/abs/2301.00774) through llm-compressor.

    Prunes with second-order (Hessian) weight updates that compensate the error.
    Example: ``{method: sparsegpt, n_m: "2:4", block_size: 128, dampening_frac: 0.01}``.
    """

    method = "sparsegpt"
    entry_point = "compress_recover.compress.pruning:compress_llmcompressor"
    uses_calibration = True
    block_size: int = 128
    dampening_frac: float = 0.01

    def check(self, key: str) -> None:
        super().check(key)
        if self.block_size < 1:
            raise ConfigError(f"{key}.block_size: {self.block_size} must be >= 1")
        if not 0 < self.dampening_frac < 1:
            raise ConfigError(f"{key}.dampening_frac: {self.dampening_frac} must be in (0, 1)")
