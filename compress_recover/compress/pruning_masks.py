"""Pure tensor maths of pruning: masks and measured sparsity. No I/O, no hooks."""

from __future__ import annotations

import torch


def magnitude_mask(weight: torch.Tensor, *, sparsity: float | None = None,
                   n_m: tuple[int, int] | None = None) -> torch.Tensor:
    """Boolean keep-mask of ``weight`` (out, in) by |w|.

    Unstructured: the ``round(sparsity * numel)`` smallest magnitudes of the whole
    layer are dropped. N:M: in every group of M consecutive input columns of a row,
    the N largest magnitudes are kept.
    """
    scores = weight.detach().abs().float()
    if n_m is not None:
        n, m = n_m
        rows, cols = scores.shape
        if cols % m:
            raise ValueError(f"N:M pruning needs the input width {cols} to be a multiple of M={m}")
        groups = scores.view(rows, cols // m, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(2, groups.topk(n, dim=2).indices, True)
        return keep.view(rows, cols)
    k = int(round(sparsity * scores.numel()))
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    if k:
        keep[scores.flatten().argsort(stable=True)[:k]] = False
    return keep.view_as(scores)


def nm_violations(weight: torch.Tensor, n: int, m: int) -> int:
    """Groups of M consecutive input weights with more than N nonzeros."""
    rows, cols = weight.shape
    nonzero = (weight.view(rows, cols // m, m) != 0).sum(dim=2)
    return int((nonzero > n).sum())


def sparsity_of(weight: torch.Tensor) -> float:
    return float((weight == 0).sum()) / weight.numel()
