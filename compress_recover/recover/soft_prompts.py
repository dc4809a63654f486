"""The start every input-side method draws its soft prompts from (one helper, so they start alike)."""

from __future__ import annotations


def vocab_prompts(embeddings, shape: tuple[int, ...], seed: int):
    """Soft prompts that start as embeddings of vocabulary tokens drawn uniformly at random.

    ``embeddings``: the model's (vocab, hidden) input embedding matrix; ``shape``: the
    prompts' token grid, e.g. ``(num_virtual_tokens,)`` for one prompt or ``(pool_size,
    num_virtual_tokens)`` for a pool. The ids come from a generator of their own seeded
    with ``seed`` (the global RNG is left alone), filled in row-major order, so a prompt of
    ``n`` tokens equals the first prompt of any pool of ``n``-token prompts drawn with the
    same seed. Returns float32 on the CPU, shape ``(*shape, hidden)``.
    """
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    ids = torch.randint(0, embeddings.shape[0], shape, generator=generator)
    return embeddings.detach()[ids.to(embeddings.device)].float().cpu()
