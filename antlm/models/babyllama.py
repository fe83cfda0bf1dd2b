"""BabyLlama: a Llama decoder (RMSNorm, rotary positions, SwiGLU, untied LM head) whose attention
mask is an argument, so one set of weights trains under the causal (CLM) and the bidirectional
(MLM) objective. Paper size: hidden 512, 16 layers, 8 heads, FFN 1024, vocab 16000, seq 128.

Parameter names and the rotary convention (rotate-half) follow `transformers`' Llama, so a
checkpoint maps one-to-one onto `LlamaForCausalLM` for export.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from antlm.config_types import ModelConfig, resolve_model_defaults
from antlm.models.fused_head import head_loss, select_positions
from antlm.models.kv_cache import KVCache, continuation_mask


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 even under bf16 autocast: the mean of squares loses precision otherwise.
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rotary_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.o_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.attention_dropout = cfg.attention_dropout

    def forward(self, x, cos, sin, causal: bool, key_padding: Optional[torch.Tensor],
                query: Optional[torch.Tensor] = None) -> torch.Tensor:
        """With `query` [B] (bidirectional only): attention output for that one position per row, [B, 1, H]."""
        batch, length, hidden = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        if query is None:
            q = apply_rotary(self.q_proj(x).view(shape).transpose(1, 2), cos, sin)
        else:
            rows = x[torch.arange(batch, device=x.device), query].unsqueeze(1)
            q = self.q_proj(rows).view(batch, 1, self.num_heads, self.head_dim).transpose(1, 2)
            q = apply_rotary(q, cos[query][:, None, None], sin[query][:, None, None])
        k = apply_rotary(self.k_proj(x).view(shape).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        dropout = self.attention_dropout if self.training else 0.0
        if causal:
            # is_causal with no explicit mask keeps the flash kernel eligible. Right padding needs no
            # key mask here: real positions never see later (padding) keys.
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            mask = None if key_padding is None else key_padding[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.o_proj(out.transpose(1, 2).reshape(batch, q.size(2), hidden))

    def decode(self, x, cos, sin, past: Optional[tuple[torch.Tensor, torch.Tensor]]):
        """Causal attention of new tokens over the cached (keys, values) of the positions before them
        and over themselves; returns the output and the (keys, values) of all positions."""
        batch, length, hidden = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = apply_rotary(self.q_proj(x).view(shape).transpose(1, 2), cos, sin)
        k = apply_rotary(self.k_proj(x).view(shape).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        if past is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            mask = continuation_mask(length, past[0].size(2), x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, hidden)), (k, v)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.ffn_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.ffn_size, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, causal, key_padding, query: Optional[torch.Tensor] = None):
        attended = self.self_attn(self.input_layernorm(x), cos, sin, causal, key_padding, query)
        if query is not None:  # keep only the query rows from here on
            x = x[torch.arange(x.size(0), device=x.device), query].unsqueeze(1)
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.post_attention_layernorm(x)))

    def decode(self, x, cos, sin, past):
        attended, cache = self.self_attn.decode(self.input_layernorm(x), cos, sin, past)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), cache


class BabyLlama(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg = resolve_model_defaults(cfg)
        if cfg.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (from the tokenizer) before building the model")
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        cos, sin = rotary_tables(cfg.max_seq_len, cfg.hidden_size // cfg.num_heads, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for name, param in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                nn.init.ones_(param)
            elif self.cfg.residual_init == "legacy" and name.endswith(("o_proj.weight", "down_proj.weight")):
                # GPT-2 style depth scaling, kept as `residual_init: legacy`; the reference
                # (HF LlamaForCausalLM's init) draws every matrix from normal(init_std).
                nn.init.normal_(param, std=std / math.sqrt(2 * self.cfg.num_layers))
            else:
                nn.init.normal_(param, std=std)

    def extend_positions(self, length: int) -> None:
        """Let inference read past max_seq_len, as the exported LlamaForCausalLM does (rotary positions
        have no table edge there); the 2025 pipeline scores long items that way. Training keeps its check."""
        if length > self.rope_cos.size(0):
            cos, sin = rotary_tables(length, self.cfg.hidden_size // self.cfg.num_heads, self.cfg.rope_theta)
            self.rope_cos, self.rope_sin = cos.to(self.rope_cos), sin.to(self.rope_sin)

    def hidden_states(self, input_ids: torch.Tensor, causal: bool, attention_mask: Optional[torch.Tensor] = None,
                      query_index: Optional[torch.Tensor] = None):
        """[B, T, H]; with `query_index` [B] (bidirectional only), just that position of each row, [B, H]:
        the last layer then runs attention and MLP for one query per row (what PLL scoring needs)."""
        length = input_ids.size(1)
        if length > self.rope_cos.size(0):
            raise ValueError(f"sequence of {length} tokens is longer than model.max_seq_len={self.cfg.max_seq_len}")
        if query_index is not None and causal:
            raise ValueError("query_index is for bidirectional scoring (causal=False)")
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]
        x = self.embed_tokens(input_ids)
        last = len(self.layers) - 1
        for depth, layer in enumerate(self.layers):
            x = layer(x, cos, sin, causal, attention_mask, query_index if depth == last else None)
        x = self.norm(x)
        return x if query_index is None else x.squeeze(1)

    def decode(self, input_ids: torch.Tensor, past: Optional[KVCache] = None) -> tuple[torch.Tensor, KVCache]:
        """Causal inference with a cache: the final hidden states [B, T, H] of `input_ids`, which
        continue the cached positions of each row (`past`, or none), and the cache of all positions."""
        start = past.length if past is not None else 0
        end = start + input_ids.size(1)
        if end > self.rope_cos.size(0):
            raise ValueError(f"sequence of {end} tokens is longer than model.max_seq_len={self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[start:end], self.rope_sin[start:end]
        x = self.embed_tokens(input_ids)
        layers = []
        for depth, layer in enumerate(self.layers):
            x, kv = layer.decode(x, cos, sin, past.layers[depth] if past is not None else None)
            layers.append(kv)
        return self.norm(x), KVCache(layers)

    def logits_at(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        causal: bool,
        attention_mask: Optional[torch.Tensor] = None,
        target_mask: Optional[torch.Tensor] = None,
        target_index: Optional[torch.Tensor] = None,
        targets: Optional[torch.Tensor] = None,
        query_index: Optional[torch.Tensor] = None,
        distill=None,
        z_loss: float = 0.0,
    ) -> torch.Tensor:
        """Logits [B, T, V]; with `target_mask` or `target_index`, only at those positions: [N, V];
        with `query_index` [B], at one position per row: [B, V]. With `targets` (one per selected
        position, -100 to skip): the summed cross-entropy instead, computed chunk by chunk without
        the full logits (models/fused_head.py); with `distill` (antlm.distill.DistillInputs, the
        teachers' head inputs at the same rows) the summed distillation loss; `z_loss` adds that
        coefficient times the summed squared log-normaliser (train.z_loss)."""
        hidden = self.hidden_states(input_ids, causal, attention_mask, query_index)
        hidden = hidden if query_index is not None else select_positions(hidden, target_mask, target_index)
        if targets is not None:
            return head_loss(hidden, self.lm_head.weight, None, targets, distill, z_loss)
        return self.logits_at(hidden)

    def head_inputs(self, input_ids: torch.Tensor, causal: bool, target_mask: Optional[torch.Tensor] = None,
                    target_index: Optional[torch.Tensor] = None):
        """(features at the selected rows, head weight, head bias): what a student distilling from
        this model needs of it, without its logits."""
        hidden = select_positions(self.hidden_states(input_ids, causal), target_mask, target_index)
        return hidden, self.lm_head.weight, None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
