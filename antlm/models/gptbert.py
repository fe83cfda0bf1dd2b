"""GPT-BERT backbone: LTG-BERT's encoder, trained as both a causal and a masked LM.

Reference: L. G. G. Charpentier and D. Samuel, "GPT or BERT: why not both?" (BabyLM 2024, the
strict-small winner), code ltgoslo/gpt-bert `pretraining/model_extra.py` (the paper's model; its
`model.py` is plain LTG-BERT).

What differs from LTG-BERT (antlm/models/ltgbert.py, whose embedding, relative positions, masks,
feed-forward, LM head and forward contract GptBert inherits):
  * Attention values are gated: one projection `in_proj_vg` gives values and a gate, and the
    attention context is multiplied by GELU(gate) (exact GELU, as the reference) before the output
    projection (`model.attention_gate`; off: a plain value projection of the same name).
  * The layer norm of the attention branch is parameter-free and sits between the gated context and
    `out_proj` (LTG-BERT: an affine norm after `out_proj`).
  * Learned layer weighting (DenseFormer's depth-weighted average, Pagliardini et al. 2024): after
    every sub-layer (attention, then FFN) of every layer, the residual stream becomes a learned
    weighted sum of the embedding output and all sub-layer outputs so far. Weights start as the
    identity (1 on the newest state, 0 elsewhere), so at init this is the plain residual stream
    (`model.layer_weighting`).
  * Dropout inside attention (on the relative table, the probabilities and the output) uses
    `model.attention_dropout`, as the reference uses attention_probs_dropout_prob for all three.
  * MNTP in both objectives: the trainer's default `mlm.target_offset` for gptbert is 1, so an
    output at position k always predicts token k+1, causal or masked (antlm.config).

`forward(ids, causal=...)`, `hidden_states`, `head_inputs` and `logits_at` keep the contract of
the other backbones (see BabyLlama.forward), so the trainer, scorers, GLUE and distillation use it
unchanged. `use_reference = True` switches attention to LTG-BERT's explicit slow computation.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlm.config_types import ModelConfig
from antlm.models.kv_cache import KVCache
from antlm.models.ltgbert import Attention as LtgBertAttention
from antlm.models.ltgbert import FeedForward, LtgBert, _norm


class GatedAttention(LtgBertAttention):
    """LTG-BERT's disentangled attention (its fast and reference kernels are inherited); the value
    path and the output norm are GPT-BERT's."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        h = cfg.hidden_size
        del self.in_proj_v
        self.gated = cfg.attention_gate
        self.in_proj_vg = nn.Linear(h, 2 * h if self.gated else h)
        self.post_norm = _norm(h, cfg.norm_eps)  # parameter-free, applied before out_proj
        self.dropout = nn.Dropout(cfg.attention_dropout)

    def _project(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
        q, k = (self._split(t) for t in self.in_proj_qk(h).chunk(2, dim=-1))
        projected = self.in_proj_vg(h)
        value, gate = projected.chunk(2, dim=-1) if self.gated else (projected, None)
        return q, k, self._split(value), gate

    def _finish(self, context: Tensor, gate: Optional[Tensor]) -> Tensor:
        if gate is not None:
            context = context * F.gelu(gate)
        return self.dropout(self.out_proj(self.post_norm(context)))


class EncoderLayer(nn.Module):
    """Holds the two sub-layers; GptBert runs them, because the layer weighting sits between them."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = GatedAttention(cfg)
        self.feed_forward = FeedForward(cfg)


def _rows(t: Tensor, query: Tensor) -> Tensor:
    """[B, T, h] -> [B, 1, h]: one position per row."""
    return t[torch.arange(t.size(0), device=t.device), query].unsqueeze(1)


class GptBert(LtgBert):
    """LTG-BERT's embedding, relative positions, masks, head and forward contract (inherited); the
    gated layers and, between sub-layers, the learned layer weighting are GPT-BERT's."""
    layer_class = EncoderLayer

    def _add_layer_parameters(self, cfg: ModelConfig) -> None:
        # Sub-layer i (2 per layer) mixes i + 2 states: the embedding output and i + 1 sub-layer outputs.
        self.layer_weights = nn.ParameterList(
            nn.Parameter(torch.zeros(i + 2)) for i in range(2 * cfg.num_layers)) if cfg.layer_weighting else None

    @torch.no_grad()
    def _init_weights(self) -> None:
        # The reference's init (model_extra.py) is LTG-BERT's; the layer weights start as the
        # identity (1 on the newest state), so at init the stream is the plain residual one.
        super()._init_weights()
        for weights in self.layer_weights or ():
            weights.zero_()
            weights[-1] = 1.0

    def _mix(self, states: list[Tensor], x: Tensor, sublayer: int) -> Tensor:
        """Append the new state; the stream continues as the learned weighted sum of all states."""
        states.append(x)
        if self.layer_weights is None:
            return x
        # Under bf16 autocast the states mix fp32 (normed embeddings) and bf16 (sublayer sums):
        # stacking promotes them all to the widest, and the weighted sum runs in that dtype.
        stacked = torch.stack(states)
        return torch.tensordot(self.layer_weights[sublayer].to(stacked.dtype), stacked, dims=1)

    def _run_layers(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor],
                    query: Optional[Tensor]) -> Tensor:
        states = [x]
        last = len(self.layers) - 1
        for depth, layer in enumerate(self.layers):
            if depth == last and query is not None:
                # From here on only the query rows are needed, in every state the weighting reads.
                index, blocked = self._query_rows(index, blocked, query, x.size(0))
                attended = layer.attention(x, rel, index, blocked, False, query)
                states = [_rows(s, query) for s in states]
                x = self._mix(states, _rows(x, query) + attended, 2 * depth)
                return self._mix(states, x + layer.feed_forward(x), 2 * depth + 1).squeeze(1)
            x = self._mix(states, x + layer.attention(x, rel, index, blocked, self.use_reference), 2 * depth)
            x = self._mix(states, x + layer.feed_forward(x), 2 * depth + 1)
        return x

    def _decode_layers(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Tensor,
                       past: Optional[KVCache]) -> tuple[Tensor, KVCache]:
        states, layers = [x], []
        for depth, layer in enumerate(self.layers):
            attended, kv = layer.attention.decode(x, rel, index, blocked, past.layers[depth] if past else None)
            x = self._mix(states, x + attended, 2 * depth)
            x = self._mix(states, x + layer.feed_forward(x), 2 * depth + 1)
            layers.append(kv)
        return x, KVCache(layers)
