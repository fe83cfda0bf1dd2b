"""GPT-BERT (Charpentier & Samuel, 2024) as `transformers` models, for checkpoints exported by antlm.

Standalone (torch + transformers only): this file is copied into each export directory and loaded
with `trust_remote_code=True`. It re-implements antlm's GPT-BERT forward pass (antlm/models/gptbert.py)
with the same numerics: LTG-BERT's parameter-free norms and disentangled relative attention, values
gated by GELU(gate), a parameter-free norm before the attention output projection, learned layer
weighting after every sub-layer, GEGLU feed-forward, and an LM head tied to the word embedding.

The network was trained with MNTP: the output at position k predicts token k+1 under both masks.
  * GptBertForCausalLM: a causal mask; logits[:, k] predict token k+1 (the usual causal-LM layout).
  * GptBertForMaskedLM: no mask; logits[:, k] predict token k+1, as trained, which is what the 2025
    pipeline's `mntp` backend reads (the logits one position left of each mask) and how GPT-BERT's
    own releases behave. With `shift_mlm_logits: true` in config.json they are shifted right by one
    instead, so logits[:, k] predict token k in place for scorers that read at the mask (`mlm`);
    position 0 then repeats position 1's.
  * GptBertForSequenceClassification: no mask; the first token's state -> parameter-free norm ->
    dropout -> linear, as antlm's GLUE fine-tuning (a fresh head).
`attention_mask` (1 = token, 0 = padding) hides padding keys.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (BaseModelOutput, CausalLMOutput, MaskedLMOutput,
                                           SequenceClassifierOutput)

from .configuration_gptbert import GptBertConfig


def log_bucket_positions(relative: Tensor, buckets: int, max_len: int) -> Tensor:
    """Signed distances -> signed buckets in [-(buckets-1), buckets-1]: exact near, log-spaced far."""
    mid = buckets // 2
    distance = relative.abs()
    far = distance.clamp(min=mid + 1).double()
    span = max(max_len - 1, mid + 1)
    growth = torch.log(far / mid) / math.log(span / mid) * (mid - 1)
    log_bucket = (mid + torch.ceil(growth)).long().clamp(max=buckets - 1)
    return torch.where(distance <= mid, relative, log_bucket * relative.sign())


def bucket_index(length: int, buckets: int, max_len: int, device: torch.device) -> Tensor:
    """Computed per call, not held as a buffer: transformers builds models on the meta device."""
    pos = torch.arange(length, device=device)
    return log_bucket_positions(pos[:, None] - pos[None, :], buckets, max_len) + buckets - 1


def _norm(size: int, eps: float, affine: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(size, eps=eps, elementwise_affine=affine)


class GptBertAttention(nn.Module):
    def __init__(self, config: GptBertConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = h // config.num_attention_heads
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.gated = config.attention_gate
        self.pre_norm = _norm(h, config.layer_norm_eps)
        self.in_proj_qk = nn.Linear(h, 2 * h)
        self.in_proj_vg = nn.Linear(h, 2 * h if self.gated else h)
        self.post_norm = _norm(h, config.layer_norm_eps)
        self.out_proj = nn.Linear(h, h)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _split(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-2, -3)

    def forward(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor]) -> Tensor:
        h = self.pre_norm(x)
        q, k = (self._split(t) for t in self.in_proj_qk(h).chunk(2, dim=-1))
        projected = self.in_proj_vg(h)
        value, gate = projected.chunk(2, dim=-1) if self.gated else (projected, None)
        v = self._split(value)
        # Score against the 2P-1 table rows, then gather per (i, j): cheaper than T*T projections.
        query_pos, key_pos = (self._split(t) for t in self.in_proj_qk(self.dropout(rel)).chunk(2, dim=-1))
        batch, heads, length, _ = q.shape
        index = index.expand(batch, heads, length, length)
        c2p = torch.matmul(q, key_pos.transpose(-1, -2)).gather(3, index)
        p2c = torch.matmul(query_pos, k.transpose(-1, -2)).gather(2, index)
        bias = ((c2p + p2c) * self.scale).to(q.dtype)
        if blocked is not None:
            bias = bias.masked_fill(blocked, torch.finfo(bias.dtype).min)
        dropout_p = self.attention_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=self.scale)
        context = context.transpose(1, 2).flatten(2)
        if gate is not None:
            context = context * F.gelu(gate)
        return self.dropout(self.out_proj(self.post_norm(context)))


class GptBertFeedForward(nn.Module):
    def __init__(self, config: GptBertConfig):
        super().__init__()
        self.pre_norm = _norm(config.hidden_size, config.layer_norm_eps)
        self.up = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.mid_norm = _norm(config.intermediate_size, config.layer_norm_eps)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.mid_dropout = nn.Dropout(config.hidden_dropout_prob) if config.ffn_mid_dropout else nn.Identity()
        self.approximate = "tanh" if config.geglu_gelu == "tanh" else "none"

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(self.pre_norm(x)).chunk(2, dim=-1)
        hidden = self.mid_dropout(self.mid_norm(value * F.gelu(gate, approximate=self.approximate)))
        return self.dropout(self.down(hidden))


class GptBertLayer(nn.Module):
    def __init__(self, config: GptBertConfig):
        super().__init__()
        self.attention = GptBertAttention(config)
        self.feed_forward = GptBertFeedForward(config)


class GptBertPreTrainedModel(PreTrainedModel):
    config_class = GptBertConfig
    base_model_prefix = "gptbert"
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Only reached for weights missing from a checkpoint (a fresh classifier head, for instance).
        std = math.sqrt(2.0 / (5.0 * self.config.hidden_size))
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, GptBertModel):
            nn.init.trunc_normal_(module.relative_embedding, mean=0.0, std=std, a=-2 * std, b=2 * std)
            for weights in module.layer_weights or ():
                weights.zero_()
                weights[-1] = 1.0


class GptBertModel(GptBertPreTrainedModel):
    """The encoder: last hidden states; `causal=True` applies the causal mask."""

    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def __init__(self, config: GptBertConfig):
        super().__init__(config)
        h = config.hidden_size
        self.word_embedding = nn.Embedding(config.vocab_size, h)
        self.embedding_norm = _norm(h, config.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.relative_embedding = nn.Parameter(torch.empty(2 * config.position_bucket_size - 1, h))
        self.relative_norm = _norm(h, config.layer_norm_eps, affine=True)
        self.layers = nn.ModuleList(GptBertLayer(config) for _ in range(config.num_hidden_layers))
        self.layer_weights = nn.ParameterList(
            nn.Parameter(torch.zeros(i + 2)) for i in range(2 * config.num_hidden_layers)
        ) if config.layer_weighting else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embedding = value

    def _mix(self, states: list, x: Tensor, sublayer: int) -> Tensor:
        states.append(x)
        if self.layer_weights is None:
            return x
        # Under bf16 autocast the states mix fp32 (normed embeddings) and bf16 (sublayer sums):
        # stacking promotes them all to the widest, and the weighted sum runs in that dtype.
        stacked = torch.stack(states)
        return torch.tensordot(self.layer_weights[sublayer].to(stacked.dtype), stacked, dims=1)

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None, causal: bool = False,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None, **kwargs):
        length = input_ids.size(1)
        if length > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings}) of this GPT-BERT model")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        x = self.embedding_dropout(self.embedding_norm(self.word_embedding(input_ids)))
        rel = self.relative_norm(self.relative_embedding)
        index = bucket_index(length, self.config.position_bucket_size, self.config.position_bucket_max, x.device)
        blocked = None
        if causal:
            blocked = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)[None, None]
        if attention_mask is not None:
            padding = ~attention_mask.to(device=x.device, dtype=torch.bool)[:, None, None, :]
            blocked = padding if blocked is None else blocked | padding
        states, outputs = [x], (x,)
        for depth, layer in enumerate(self.layers):
            x = self._mix(states, x + layer.attention(x, rel, index, blocked), 2 * depth)
            x = self._mix(states, x + layer.feed_forward(x), 2 * depth + 1)
            outputs = outputs + (x,)
        hidden_states = outputs if output_hidden_states else None
        if not return_dict:
            return (x, hidden_states) if output_hidden_states else (x,)
        return BaseModelOutput(last_hidden_state=x, hidden_states=hidden_states)


class GptBertLmHead(nn.Module):
    def __init__(self, config: GptBertConfig):
        super().__init__()
        h = config.hidden_size
        self.pre_norm = _norm(h, config.layer_norm_eps)
        self.dense = nn.Linear(h, h)
        self.post_norm = _norm(h, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.decoder = nn.Linear(h, config.vocab_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.dropout(self.post_norm(F.gelu(self.dense(self.pre_norm(hidden))))))


class _GptBertWithHead(GptBertPreTrainedModel):
    _tied_weights_keys = {"head.decoder.weight": "gptbert.word_embedding.weight"}
    causal = False

    def __init__(self, config: GptBertConfig):
        super().__init__(config)
        self.gptbert = GptBertModel(config)
        self.head = GptBertLmHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.gptbert.word_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.gptbert.word_embedding = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.head.decoder = value

    def _logits(self, input_ids, attention_mask, output_hidden_states):
        encoded = self.gptbert(input_ids, attention_mask=attention_mask, causal=self.causal,
                               output_hidden_states=output_hidden_states, return_dict=True)
        return self.head(encoded.last_hidden_state), encoded.hidden_states


class GptBertForMaskedLM(_GptBertWithHead):
    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None, token_type_ids: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None, **kwargs):
        """MNTP logits (position k predicts token k+1; in place with config.shift_mlm_logits); labels
        are aligned with the logits, -100 to skip."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        logits, states = self._logits(input_ids, attention_mask, output_hidden_states)
        if getattr(self.config, "shift_mlm_logits", False):
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.to(logits.device).flatten(), ignore_index=-100)
        if not return_dict:
            output = (logits,) + ((states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=states)


class GptBertForCausalLM(_GptBertWithHead):
    causal = True

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None, token_type_ids: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None, **kwargs):
        """logits[:, k] predict token k+1; `labels` are the input ids (shifted here), -100 to skip."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        logits, states = self._logits(input_ids, attention_mask, output_hidden_states)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].to(logits.device).flatten(),
                                   ignore_index=-100)
        if not return_dict:
            output = (logits,) + ((states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return CausalLMOutput(loss=loss, logits=logits, hidden_states=states)


class GptBertForSequenceClassification(GptBertPreTrainedModel):
    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def __init__(self, config: GptBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.gptbert = GptBertModel(config)
        self.norm = _norm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None, token_type_ids: Optional[Tensor] = None,
                position_ids: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None, **kwargs):
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.gptbert(input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
                               return_dict=True)
        logits = self.classifier(self.dropout(self.norm(encoded.last_hidden_state[:, 0])))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        if not return_dict:
            output = (logits,) + ((encoded.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)
