"""LTG-BERT encoder backbone in plain PyTorch.

Reference: D. Samuel, A. Kutuzov, L. Øvrelid, E. Velldal, "Trained on 100 million words and still
in shape: BERT meets British National Corpus" (EACL Findings 2023), the LTG-BERT model that won
BabyLM 2023 strict-small as a baseline.

Architecture
  * Embedding: word embedding -> parameter-free LayerNorm -> dropout. No absolute positions.
  * Relative positions: one table of 2*P-1 vectors (P = position_buckets) shared by all layers,
    followed by an affine LayerNorm. Distances i-j (query minus key) are exact up to +-P//2 and
    log-bucketed beyond, reaching the table edge at distance position_max-1 (the reference's
    max_position_embeddings, 512; `position_max: 0` gives max_seq_len-1, antlm's old choice).
  * Layer: x = x + Attention(x); x = x + FeedForward(x).
  * Attention (disentangled, DeBERTa-style): parameter-free pre-LN; in_proj_qk gives content q, k
    and, applied to the relative table, query_pos/key_pos. score(i,j) = q_i.k_j
    + q_i.key_pos[r(i,j)] + query_pos[r(i,j)].k_j, scaled by 1/sqrt(3*head_dim) (three terms);
    then softmax, dropout, out_proj, affine post-LN, dropout.
  * FeedForward: parameter-free LN -> Linear(h, 2f) -> GEGLU (tanh GELU, `model.gelu`) ->
    parameter-free LN(f) -> Linear(f, h) -> dropout (no biases; `model.ffn_mid_dropout` adds one
    after the middle LN, as antlm had before defaults version 2).
  * LM head: LN -> Linear(h, h) -> GELU -> LN -> dropout -> Linear(h, V) tied to the embedding.

The same network runs bidirectionally (MLM) or with a causal mask (CLM), as AntLM alternates both.
The fast path folds both position terms and the mask into one additive bias for
`scaled_dot_product_attention`; `use_reference = True` switches to an explicit, slow computation
kept for parity tests.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlm.config_types import ModelConfig, bucket_max, resolve_model_defaults
from antlm.models.fused_head import head_loss, select_positions
from antlm.models.kv_cache import KVCache, continuation_mask


def log_bucket_positions(relative: Tensor, buckets: int, max_len: int) -> Tensor:
    """Map signed distances to signed buckets in [-(buckets-1), buckets-1].

    Nearby words get their own bucket because local order matters most; far positions share
    buckets whose width grows geometrically, so a small table still spans max_len.
    """
    mid = buckets // 2
    distance = relative.abs()
    # Evaluate the log on a clamped copy so exact-range entries never see log(0) or 0/0.
    far = distance.clamp(min=mid + 1).double()
    span = max(max_len - 1, mid + 1)
    growth = torch.log(far / mid) / math.log(span / mid) * (mid - 1)
    log_bucket = (mid + torch.ceil(growth)).long().clamp(max=buckets - 1)
    return torch.where(distance <= mid, relative, log_bucket * relative.sign())


def bucket_index_matrix(max_len: int, buckets: int, position_max: Optional[int] = None) -> Tensor:
    """[max_len, max_len] indices into the relative table for (query i, key j), r = i - j; the log
    buckets reach the table edge at distance position_max-1 (default max_len-1)."""
    pos = torch.arange(max_len)
    relative = pos[:, None] - pos[None, :]
    return log_bucket_positions(relative, buckets, position_max or max_len) + buckets - 1


def _norm(size: int, eps: float, affine: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(size, eps=eps, elementwise_affine=affine)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.head_dim = h // cfg.num_heads
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)
        self.attention_dropout = cfg.attention_dropout
        self.pre_norm = _norm(h, cfg.norm_eps)
        self.in_proj_qk = nn.Linear(h, 2 * h)
        self.in_proj_v = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)
        self.post_norm = _norm(h, cfg.norm_eps, affine=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.probs_dropout = nn.Dropout(cfg.attention_dropout)

    def _split(self, t: Tensor) -> Tensor:
        # [..., T, h] -> [..., heads, T, head_dim]
        t = t.unflatten(-1, (self.num_heads, self.head_dim))
        return t.transpose(-2, -3)

    def _project(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
        """Content queries, keys and values (and a gate, in GPT-BERT's attention) of normed inputs."""
        q, k = (self._split(t) for t in self.in_proj_qk(h).chunk(2, dim=-1))
        return q, k, self._split(self.in_proj_v(h)), None

    def _finish(self, context: Tensor, gate: Optional[Tensor]) -> Tensor:
        return self.dropout(self.post_norm(self.out_proj(context)))

    def forward(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor],
                reference: bool = False, query: Optional[Tensor] = None) -> Tensor:
        """With `query` [B]: the output for that one position per row only, [B, 1, h]; `index` and
        `blocked` then hold just those query rows."""
        q, k, v, gate = self._project(self.pre_norm(x))
        if query is not None:
            rows = torch.arange(q.size(0), device=q.device)
            q = q[rows, :, query].unsqueeze(2)  # [B, heads, 1, d]
            gate = None if gate is None else gate[rows, query].unsqueeze(1)
        return self._finish(self._attend(q, k, v, rel, index, blocked, reference), gate)

    def decode(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Tensor,
               past: Optional[tuple[Tensor, Tensor]]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Causal attention of new tokens over the cached content (keys, values) of the positions
        before them and over themselves; `index` and `blocked` are [new, cached + new]. Returns the
        output and the (keys, values) of all positions."""
        q, k, v, gate = self._project(self.pre_norm(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        return self._finish(self._attend(q, k, v, rel, index, blocked, False), gate), (k, v)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor],
                reference: bool) -> Tensor:
        """The attention context, [B, T, h], by the fast or the reference kernel."""
        attention = self._reference_attention if reference else self._fast_attention
        return attention(q, k, v, self.dropout(rel), index, blocked).transpose(1, 2).flatten(2)

    def _fast_attention(self, q: Tensor, k: Tensor, v: Tensor, rel: Tensor, index: Tensor,
                        blocked: Optional[Tensor]) -> Tensor:
        # Projecting the 2P-1 table rows (not T*T gathered copies) is what keeps this cheap: the
        # projection commutes with the gather, so we score against the table, then gather.
        query_pos, key_pos = (self._split(t) for t in self.in_proj_qk(rel).chunk(2, dim=-1))
        batch, heads, queries, _ = q.shape
        index = index.expand(batch, heads, queries, k.size(2))
        c2p = torch.matmul(q, key_pos.transpose(-1, -2)).gather(3, index)  # [B,H,Tq,2P-1] -> [B,H,Tq,Tk]
        p2c = torch.matmul(query_pos, k.transpose(-1, -2)).gather(2, index)  # [B,H,2P-1,Tk] -> [B,H,Tq,Tk]
        bias = ((c2p + p2c) * self.scale).to(q.dtype)
        if blocked is not None:
            # A finite minimum (not -inf) keeps fully masked rows (left padding + causal) NaN-free.
            bias = bias.masked_fill(blocked, torch.finfo(bias.dtype).min)
        dropout_p = self.attention_dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p,
                                              scale=self.scale)

    def _reference_attention(self, q: Tensor, k: Tensor, v: Tensor, rel: Tensor, index: Tensor,
                             blocked: Optional[Tensor]) -> Tensor:
        # Deliberately naive: materialise one position vector per (i, j) pair, project each, and
        # write the three score terms out as einsums over [T, T, head_dim].
        pairs = rel[index]  # [T, T, h]
        query_pos, key_pos = self.in_proj_qk(pairs).chunk(2, dim=-1)
        query_pos = query_pos.unflatten(-1, (self.num_heads, self.head_dim))  # [T, T, H, d]
        key_pos = key_pos.unflatten(-1, (self.num_heads, self.head_dim))
        scores = (torch.einsum("bhid,bhjd->bhij", q, k)
                  + torch.einsum("bhid,ijhd->bhij", q, key_pos)
                  + torch.einsum("ijhd,bhjd->bhij", query_pos, k)) * self.scale
        if blocked is not None:
            scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        probs = self.probs_dropout(torch.softmax(scores, dim=-1))
        return torch.einsum("bhij,bhjd->bhid", probs, v)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = _norm(cfg.hidden_size, cfg.norm_eps)
        self.up = nn.Linear(cfg.hidden_size, 2 * cfg.ffn_size, bias=False)
        # Normalising the gated activations keeps their scale in check without extra parameters.
        self.mid_norm = _norm(cfg.ffn_size, cfg.norm_eps)
        self.down = nn.Linear(cfg.ffn_size, cfg.hidden_size, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.mid_dropout = nn.Dropout(cfg.dropout) if cfg.ffn_mid_dropout else nn.Identity()
        self.approximate = "tanh" if cfg.gelu == "tanh" else "none"

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(self.pre_norm(x)).chunk(2, dim=-1)
        hidden = self.mid_dropout(self.mid_norm(value * F.gelu(gate, approximate=self.approximate)))
        return self.dropout(self.down(hidden))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor],
                reference: bool = False, query: Optional[Tensor] = None) -> Tensor:
        attended = self.attention(x, rel, index, blocked, reference, query)
        if query is not None:  # keep only the query rows from here on
            x = x[torch.arange(x.size(0), device=x.device), query].unsqueeze(1)
        x = x + attended
        return x + self.feed_forward(x)


class LmHead(nn.Module):
    def __init__(self, cfg: ModelConfig, embedding: nn.Parameter):
        super().__init__()
        h = cfg.hidden_size
        self.pre_norm = _norm(h, cfg.norm_eps)
        self.dense = nn.Linear(h, h)
        self.post_norm = _norm(h, cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(h, cfg.vocab_size)
        # Tying halves the vocabulary parameters, which matters at 16k x 768 on a 10M-word budget.
        self.decoder.weight = embedding

    def features(self, hidden: Tensor) -> Tensor:
        """What the vocabulary projection (`decoder`) is applied to."""
        return self.dropout(self.post_norm(F.gelu(self.dense(self.pre_norm(hidden)))))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.features(hidden))


class LtgBert(nn.Module):
    """The encoder; GPT-BERT (antlm/models/gptbert.py) subclasses it, changing the layer, the
    parameters beside the layers and how the layers run (`_run_layers`)."""
    layer_class = EncoderLayer

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg = resolve_model_defaults(cfg)
        if cfg.vocab_size <= 0:
            raise ValueError(f"{type(self).__name__} needs model.vocab_size > 0 (set from the tokenizer), got {cfg.vocab_size}")
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
        # The table rows a length-T input can use are a contiguous band (bucketing is monotonic in
        # the offset); projecting only that band saves most of the table work on short inputs.
        self.table_band = [(int(buckets[:t, :t].min()), int(buckets[:t, :t].max()) + 1)
                           for t in range(1, cfg.max_seq_len + 1)]
        self.layers = nn.ModuleList(self.layer_class(cfg) for _ in range(cfg.num_layers))
        self._add_layer_parameters(cfg)  # registered before the head: the parameter order is the checkpoint's
        self.head = LmHead(cfg, self.word_embedding.weight)
        self._init_weights()

    def _add_layer_parameters(self, cfg: ModelConfig) -> None:
        """A subclass's parameters beside the layers (GPT-BERT's layer weights); LTG-BERT has none."""

    @torch.no_grad()
    def _init_weights(self) -> None:
        # LTG-BERT's init: std sqrt(2/(5h)) (Nguyen & Salazar's "small init"), truncated at 2 std.
        std = math.sqrt(2.0 / (5.0 * self.cfg.hidden_size))

        def trunc(w: Tensor) -> None:
            nn.init.trunc_normal_(w, mean=0.0, std=std, a=-2 * std, b=2 * std)

        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                trunc(module.weight)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()
        trunc(self.relative_embedding)
        # Each residual branch adds variance; shrinking deeper branches keeps the stream's scale
        # roughly constant over depth at init. The reference shrinks both FFN matrices (its
        # attention output is followed by an affine LayerNorm, which resets its scale anyway).
        for depth, layer in enumerate(self.layers):
            factor = 1.0 / math.sqrt(2.0 * (1 + depth))
            if self.cfg.residual_init == "legacy":
                layer.attention.out_proj.weight.mul_(factor)
            else:
                layer.feed_forward.up.weight.mul_(factor)
            layer.feed_forward.down.weight.mul_(factor)

    def num_parameters(self, trainable_only: bool = False) -> int:
        # parameters() yields the tied embedding/decoder weight once.
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
        if query_index is not None and not self.use_reference:
            return self._run_layers(x, rel, index, blocked, query_index)
        x = self._run_layers(x, rel, index, blocked, None)
        if query_index is not None:  # the reference path computes every row, then picks
            return x[torch.arange(x.size(0), device=x.device), query_index]
        return x

    @staticmethod
    def _query_rows(index: Tensor, blocked: Optional[Tensor], query: Tensor, batch: int) -> tuple:
        """`index` and `blocked` for the last layer when it runs for one query row per sequence."""
        length = index.size(-1)
        index = index[query].unsqueeze(1).unsqueeze(1)  # [B, 1, 1, T]
        if blocked is not None:
            rows = torch.arange(batch, device=index.device)
            blocked = blocked.expand(batch, -1, length, -1)[rows, :, query].unsqueeze(2)
        return index, blocked

    def _run_layers(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor],
                    query: Optional[Tensor]) -> Tensor:
        """The layers over the embedded input: [B, T, h], or [B, h] for the `query` rows."""
        last = len(self.layers) - 1
        for depth, layer in enumerate(self.layers):
            if depth == last and query is not None:
                index, blocked = self._query_rows(index, blocked, query, x.size(0))
                return layer(x, rel, index, blocked, False, query).squeeze(1)
            x = layer(x, rel, index, blocked, self.use_reference)
        return x

    def decode(self, input_ids: Tensor, past: Optional[KVCache] = None) -> tuple[Tensor, KVCache]:
        """Causal inference with a cache (as `BabyLlama.decode`): the final hidden states of
        `input_ids`, which continue the cached positions of each row, and the cache of all positions."""
        start = past.length if past is not None else 0
        end = start + input_ids.size(1)
        if end > self.max_seq_len:
            raise ValueError(f"sequence length {end} exceeds model.max_seq_len ({self.max_seq_len}); "
                             "the relative-position bucket table is built for at most that length")
        x = self.embedding_dropout(self.embedding_norm(self.word_embedding(input_ids)))
        low, high = self.table_band[end - 1]
        rel = self.relative_norm(self.relative_embedding[low:high])
        index = self.bucket_index[start:end, :end] - low
        blocked = ~continuation_mask(input_ids.size(1), start, x.device)
        return self._decode_layers(x, rel, index, blocked, past)

    def _decode_layers(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Tensor,
                       past: Optional[KVCache]) -> tuple[Tensor, KVCache]:
        layers = []
        for depth, layer in enumerate(self.layers):
            attended, kv = layer.attention.decode(x, rel, index, blocked, past.layers[depth] if past else None)
            x = x + attended
            x = x + layer.feed_forward(x)
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
        hidden = self.hidden_states(input_ids, causal, attention_mask, query_index)
        hidden = hidden if query_index is not None else select_positions(hidden, target_mask, target_index)
        if targets is not None:
            decoder = self.head.decoder
            return head_loss(self.head.features(hidden), decoder.weight, decoder.bias, targets, distill, z_loss)
        return self.logits_at(hidden)

    def head_inputs(self, input_ids: Tensor, causal: bool, target_mask: Optional[Tensor] = None,
                    target_index: Optional[Tensor] = None):
        """The contract of `BabyLlama.head_inputs`: (features, head weight, head bias) at the rows."""
        hidden = select_positions(self.hidden_states(input_ids, causal), target_mask, target_index)
        return self.head.features(hidden), self.head.decoder.weight, self.head.decoder.bias
