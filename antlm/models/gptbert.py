"""GPT-BERT backbone: LTG-BERT's encoder, trained as both a causal and a masked LM.

Reference: L. G. G. Charpentier and D. Samuel, "GPT or BERT: why not both?" (BabyLM 2024, the
strict-small winner), code ltgoslo/gpt-bert `pretraining/model_extra.py` (the paper's model; its
`model.py` is plain LTG-BERT).

What differs from LTG-BERT (antlm/models/ltgbert.py, whose relative positions, feed-forward and
LM head are reused unchanged):
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

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlm.config import ModelConfig, bucket_max, resolve_model_defaults
from antlm.models.fused_head import head_loss
from antlm.models.ltgbert import Attention as LtgBertAttention
from antlm.models.kv_cache import KVCache
from antlm.models.ltgbert import FeedForward, LmHead, LtgBert, bucket_index_matrix


def _norm(size: int, eps: float, affine: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(size, eps=eps, elementwise_affine=affine)


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


class GptBert(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg = resolve_model_defaults(cfg)
        if cfg.vocab_size <= 0:
            raise ValueError(f"GptBert needs model.vocab_size > 0 (set from the tokenizer), got {cfg.vocab_size}")
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(f"hidden_size ({cfg.hidden_size}) must be divisible by num_heads ({cfg.num_heads})")
        if cfg.position_buckets < 2:
            raise ValueError(f"position_buckets must be >= 2, got {cfg.position_buckets}")
        self.cfg = cfg
        self.max_seq_len = cfg.max_seq_len
        self.use_reference = False
        h = cfg.hidden_size

        self.word_embedding = nn.Embedding(cfg.vocab_size, h)
        self.embedding_norm = _norm(h, cfg.norm_eps)
        self.embedding_dropout = nn.Dropout(cfg.dropout)
        self.relative_embedding = nn.Parameter(torch.empty(2 * cfg.position_buckets - 1, h))
        self.relative_norm = _norm(h, cfg.norm_eps, affine=True)
        buckets = bucket_index_matrix(cfg.max_seq_len, cfg.position_buckets, bucket_max(cfg))
        self.register_buffer("bucket_index", buckets, persistent=False)
        # The contiguous band of table rows a length-T input uses (see LtgBert).
        self.table_band = [(int(buckets[:t, :t].min()), int(buckets[:t, :t].max()) + 1)
                           for t in range(1, cfg.max_seq_len + 1)]
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        # Sub-layer i (2 per layer) mixes i + 2 states: the embedding output and i + 1 sub-layer outputs.
        self.layer_weights = nn.ParameterList(
            nn.Parameter(torch.zeros(i + 2)) for i in range(2 * cfg.num_layers)) if cfg.layer_weighting else None
        self.head = LmHead(cfg, self.word_embedding.weight)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # The reference's init (model_extra.py): truncated normal, std sqrt(2/(5h)), zero biases;
        # the FFN's up and down projections shrink by 1/sqrt(2(i+1)) in layer i, out_proj does not.
        std = math.sqrt(2.0 / (5.0 * self.cfg.hidden_size))

        def trunc(w: Tensor) -> None:
            nn.init.trunc_normal_(w, mean=0.0, std=std, a=-2 * std, b=2 * std)

        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                trunc(module.weight)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()
        trunc(self.relative_embedding)
        for depth, layer in enumerate(self.layers):
            factor = 1.0 / math.sqrt(2.0 * (1 + depth))
            if self.cfg.residual_init == "legacy":
                layer.attention.out_proj.weight.mul_(factor)
            else:
                layer.feed_forward.up.weight.mul_(factor)
            layer.feed_forward.down.weight.mul_(factor)
        for weights in self.layer_weights or ():
            weights.zero_()
            weights[-1] = 1.0

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _blocked_mask(self, length: int, causal: bool, attention_mask: Optional[Tensor],
                      device: torch.device) -> Optional[Tensor]:
        """True where a query may NOT look at a key; shape broadcastable to [B, H, T, T]."""
        blocked = None
        if causal:
            blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)[None, None]
        if attention_mask is not None:
            padding = ~attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
            blocked = padding if blocked is None else blocked | padding
        return blocked

    def _mix(self, states: list[Tensor], x: Tensor, sublayer: int) -> Tensor:
        """Append the new state; the stream continues as the learned weighted sum of all states."""
        states.append(x)
        if self.layer_weights is None:
            return x
        # Under bf16 autocast the states mix fp32 (normed embeddings) and bf16 (sublayer sums):
        # stacking promotes them all to the widest, and the weighted sum runs in that dtype.
        stacked = torch.stack(states)
        return torch.tensordot(self.layer_weights[sublayer].to(stacked.dtype), stacked, dims=1)

    def hidden_states(self, input_ids: Tensor, causal: bool, attention_mask: Optional[Tensor] = None,
                      query_index: Optional[Tensor] = None) -> Tensor:
        """[B, T, h]; with `query_index` [B] (bidirectional only), just that position of each row,
        [B, h]: the last layer then runs for one query per row (what PLL scoring needs)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        length = input_ids.size(1)
        if length > self.max_seq_len:
            raise ValueError(f"sequence length {length} exceeds model.max_seq_len ({self.max_seq_len}); "
                             "the relative-position bucket table is built for at most that length")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match "
                             f"input_ids shape {tuple(input_ids.shape)}")
        if query_index is not None and causal:
            raise ValueError("query_index is for bidirectional scoring (causal=False)")
        x = self.embedding_dropout(self.embedding_norm(self.word_embedding(input_ids)))
        low, high = self.table_band[length - 1]
        rel = self.relative_norm(self.relative_embedding[low:high])
        index = self.bucket_index[:length, :length] - low
        blocked = self._blocked_mask(length, causal, attention_mask, x.device)
        query = None if self.use_reference else query_index
        states = [x]
        last = len(self.layers) - 1
        for depth, layer in enumerate(self.layers):
            if depth == last and query is not None:
                # From here on only the query rows are needed, in every state the weighting reads.
                index = index[query].unsqueeze(1).unsqueeze(1)  # [B, 1, 1, T]
                if blocked is not None:
                    rows = torch.arange(x.size(0), device=x.device)
                    blocked = blocked.expand(x.size(0), -1, length, -1)[rows, :, query].unsqueeze(2)
                attended = layer.attention(x, rel, index, blocked, False, query)
                states = [_rows(s, query) for s in states]
                x = self._mix(states, _rows(x, query) + attended, 2 * depth)
                return self._mix(states, x + layer.feed_forward(x), 2 * depth + 1).squeeze(1)
            x = self._mix(states, x + layer.attention(x, rel, index, blocked, self.use_reference), 2 * depth)
            x = self._mix(states, x + layer.feed_forward(x), 2 * depth + 1)
        if query_index is not None:  # the reference path computes every row, then picks
            return x[torch.arange(x.size(0), device=x.device), query_index]
        return x

    def decode(self, input_ids: Tensor, past: Optional[KVCache] = None) -> tuple[Tensor, KVCache]:
        """Causal inference with a cache (as `LtgBert.decode`, with the layer weighting)."""
        x, rel, index, blocked = LtgBert.decode_inputs(self, input_ids, past)
        states, layers = [x], []
        for depth, layer in enumerate(self.layers):
            attended, kv = layer.attention.decode(x, rel, index, blocked, past.layers[depth] if past else None)
            x = self._mix(states, x + attended, 2 * depth)
            x = self._mix(states, x + layer.feed_forward(x), 2 * depth + 1)
            layers.append(kv)
        return x, KVCache(layers)

    def logits_at(self, hidden: Tensor) -> Tensor:
        return self.head(hidden)

    def forward(self, input_ids: Tensor, causal: bool, attention_mask: Optional[Tensor] = None,
                target_mask: Optional[Tensor] = None, target_index: Optional[Tensor] = None,
                targets: Optional[Tensor] = None, query_index: Optional[Tensor] = None, distill=None,
                z_loss: float = 0.0) -> Tensor:
        """The contract of `BabyLlama.forward`: logits at all, selected ([N, V]) or one-per-row
        (`query_index`, [B, V]) positions, or with `targets` their summed cross-entropy (plus
        `z_loss` times the summed squared log-normaliser; with `distill`, the distillation loss)."""
        from antlm.models import select_positions

        hidden = self.hidden_states(input_ids, causal, attention_mask, query_index)
        hidden = hidden if query_index is not None else select_positions(hidden, target_mask, target_index)
        if targets is not None:
            decoder = self.head.decoder
            return head_loss(self.head.features(hidden), decoder.weight, decoder.bias, targets, distill, z_loss)
        return self.logits_at(hidden)

    def head_inputs(self, input_ids: Tensor, causal: bool, target_mask: Optional[Tensor] = None,
                    target_index: Optional[Tensor] = None):
        """The contract of `BabyLlama.head_inputs`: (features, head weight, head bias) at the rows."""
        from antlm.models import select_positions

        hidden = select_positions(self.hidden_states(input_ids, causal), target_mask, target_index)
        return self.head.features(hidden), self.head.decoder.weight, self.head.decoder.bias
