"""Cached keys and values of a causal prefix, so that several continuations of one context run the
context once (zero-shot scoring: an entity-tracking context and its five options)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Per layer (keys, values), each [batch, heads, length, head_dim], positions 0..length-1 of every
    row (BabyLlama's keys carry their rotary rotation, LTG-BERT's are content keys)."""
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        return self.layers[0][0].size(2) if self.layers else 0

    def rows(self, index: torch.Tensor) -> "KVCache":
        """The cache of the rows `index` (a row may repeat: one per continuation of a context)."""
        return KVCache([(k.index_select(0, index), v.index_select(0, index)) for k, v in self.layers])


def continuation_mask(queries: int, cached: int, device) -> torch.Tensor:
    """[queries, cached + queries] True where a new token may look: every cached key, and the new
    keys up to and including its own position."""
    return torch.ones(queries, cached + queries, dtype=torch.bool, device=device).tril(cached)
