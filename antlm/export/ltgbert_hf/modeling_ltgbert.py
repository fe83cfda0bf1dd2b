"""LTG-BERT (Samuel et al., 2023) as a `transformers` masked LM, for checkpoints exported by antlm.

Standalone (torch + transformers only): this file is copied into each export directory and loaded
with `trust_remote_code=True`. It re-implements antlm's LTG-BERT forward pass with the same
numerics: parameter-free pre-norms, a shared log-bucketed relative-position table, disentangled
attention (content-content + content-position + position-content, scaled by 1/sqrt(3*head_dim)),
GEGLU feed-forward (tanh or exact GELU, `geglu_gelu`), and an LM head tied to the word embedding.
Attention is bidirectional; the `attention_mask` (1 = token, 0 = padding) only hides padding keys.

Classes: `LtgBertModel` (the encoder, AutoModel), `LtgBertForMaskedLM` (AutoModelForMaskedLM, what
the export's weights are) and `LtgBertForSequenceClassification` (AutoModelForSequenceClassification:
the encoder plus a classifier head that fine-tuning trains from scratch).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput

from .configuration_ltgbert import LtgBertConfig


def log_bucket_positions(relative: Tensor, buckets: int, max_len: int) -> Tensor:
    """Signed distances -> signed buckets in [-(buckets-1), buckets-1]: exact near, log-spaced far."""
    mid = buckets // 2
    distance = relative.abs()
    # The clamp keeps log() away from 0 for the exact-range entries that torch.where discards anyway.
    far = distance.clamp(min=mid + 1).double()
    span = max(max_len - 1, mid + 1)
    growth = torch.log(far / mid) / math.log(span / mid) * (mid - 1)
    log_bucket = (mid + torch.ceil(growth)).long().clamp(max=buckets - 1)
    return torch.where(distance <= mid, relative, log_bucket * relative.sign())


def bucket_index(length: int, buckets: int, max_len: int, device: torch.device) -> Tensor:
    """[length, length] rows of the relative table for (query i, key j), distance i - j.

    Computed per call instead of held as a buffer: transformers builds models on the meta device,
    where a non-persistent buffer would never receive values.
    """
    pos = torch.arange(length, device=device)
    return log_bucket_positions(pos[:, None] - pos[None, :], buckets, max_len) + buckets - 1


def _norm(size: int, eps: float, affine: bool = False) -> nn.LayerNorm:
    return nn.LayerNorm(size, eps=eps, elementwise_affine=affine)


class LtgBertAttention(nn.Module):
    def __init__(self, config: LtgBertConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = h // config.num_attention_heads
        self.scale = 1.0 / math.sqrt(3 * self.head_dim)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.pre_norm = _norm(h, config.layer_norm_eps)
        self.in_proj_qk = nn.Linear(h, 2 * h)
        self.in_proj_v = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)
        self.post_norm = _norm(h, config.layer_norm_eps, affine=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def _split(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-2, -3)

    def forward(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor]) -> Tensor:
        h = self.pre_norm(x)
        q, k = (self._split(t) for t in self.in_proj_qk(h).chunk(2, dim=-1))
        v = self._split(self.in_proj_v(h))
        # The position terms are scored against the 2P-1 table rows and then gathered per (i, j),
        # which is much cheaper than projecting T*T gathered vectors.
        query_pos, key_pos = (self._split(t) for t in self.in_proj_qk(self.dropout(rel)).chunk(2, dim=-1))
        batch, heads, length, _ = q.shape
        index = index.expand(batch, heads, length, length)
        c2p = torch.matmul(q, key_pos.transpose(-1, -2)).gather(3, index)
        p2c = torch.matmul(query_pos, k.transpose(-1, -2)).gather(2, index)
        bias = ((c2p + p2c) * self.scale).to(q.dtype)
        if blocked is not None:
            # A finite minimum (not -inf) keeps rows without any visible key NaN-free.
            bias = bias.masked_fill(blocked, torch.finfo(bias.dtype).min)
        dropout_p = self.attention_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=self.scale)
        context = context.transpose(1, 2).flatten(2)
        return self.dropout(self.post_norm(self.out_proj(context)))


class LtgBertFeedForward(nn.Module):
    def __init__(self, config: LtgBertConfig):
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


class LtgBertLayer(nn.Module):
    def __init__(self, config: LtgBertConfig):
        super().__init__()
        self.attention = LtgBertAttention(config)
        self.feed_forward = LtgBertFeedForward(config)

    def forward(self, x: Tensor, rel: Tensor, index: Tensor, blocked: Optional[Tensor]) -> Tensor:
        x = x + self.attention(x, rel, index, blocked)
        return x + self.feed_forward(x)


class LtgBertPreTrainedModel(PreTrainedModel):
    config_class = LtgBertConfig
    base_model_prefix = "ltgbert"
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Only reached for weights missing from a checkpoint (e.g. a freshly built model). LTG-BERT's
        # own init: truncated normal with std sqrt(2/(5h)).
        std = math.sqrt(2.0 / (5.0 * self.config.hidden_size))

        def trunc(w: Tensor) -> None:
            nn.init.trunc_normal_(w, mean=0.0, std=std, a=-2 * std, b=2 * std)

        if isinstance(module, (nn.Linear, nn.Embedding)):
            trunc(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, LtgBertModel):
            trunc(module.relative_embedding)


class LtgBertModel(LtgBertPreTrainedModel):
    """The encoder: returns the last hidden states (no pooler)."""

    # Loading the encoder alone from a masked-LM export drops the LM head on purpose.
    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def __init__(self, config: LtgBertConfig):
        super().__init__(config)
        h = config.hidden_size
        self.word_embedding = nn.Embedding(config.vocab_size, h)
        self.embedding_norm = _norm(h, config.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.relative_embedding = nn.Parameter(torch.empty(2 * config.position_bucket_size - 1, h))
        self.relative_norm = _norm(h, config.layer_norm_eps, affine=True)
        self.layers = nn.ModuleList(LtgBertLayer(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embedding = value

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,  # accepted for tokenizer compatibility; unused
        position_ids: Optional[Tensor] = None,  # positions are relative; unused
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        length = input_ids.size(1)
        if length > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {length} exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings}) of this LTG-BERT model")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        x = self.embedding_dropout(self.embedding_norm(self.word_embedding(input_ids)))
        rel = self.relative_norm(self.relative_embedding)
        bucket_max = self.config.position_bucket_max or self.config.max_position_embeddings
        index = bucket_index(length, self.config.position_bucket_size, bucket_max, x.device)
        blocked = None
        if attention_mask is not None:
            # [batch, key] (1 = token), or [batch, query, key] as the 2025 pipeline's fine-tuning
            # builds with --causal.
            keep = attention_mask.to(device=x.device, dtype=torch.bool)
            blocked = ~(keep[:, None, None, :] if keep.dim() == 2 else keep[:, None])
        states = (x,) if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, rel, index, blocked)
            if output_hidden_states:
                states = states + (x,)
        if not return_dict:
            return (x, states) if output_hidden_states else (x,)
        return BaseModelOutput(last_hidden_state=x, hidden_states=states)


class LtgBertLmHead(nn.Module):
    def __init__(self, config: LtgBertConfig):
        super().__init__()
        h = config.hidden_size
        self.pre_norm = _norm(h, config.layer_norm_eps)
        self.dense = nn.Linear(h, h)
        self.post_norm = _norm(h, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.decoder = nn.Linear(h, config.vocab_size)

    def forward(self, hidden: Tensor) -> Tensor:
        hidden = self.post_norm(F.gelu(self.dense(self.pre_norm(hidden))))
        return self.decoder(self.dropout(hidden))


class LtgBertForMaskedLM(LtgBertPreTrainedModel):
    # transformers 5 reads a {target: source} mapping; 4.x only iterates the names.
    _tied_weights_keys = {"head.decoder.weight": "ltgbert.word_embedding.weight"}

    def __init__(self, config: LtgBertConfig):
        super().__init__(config)
        self.ltgbert = LtgBertModel(config)
        self.head = LtgBertLmHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.ltgbert.word_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.ltgbert.word_embedding = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.head.decoder = value

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        """Logits predict each position's own token (BERT-style, in place); labels use -100 to skip."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.ltgbert(input_ids, attention_mask=attention_mask,
                               output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.head(encoded.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.to(logits.device).flatten(), ignore_index=-100)
        if not return_dict:
            output = (logits,) + ((encoded.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)


class LtgBertClassifier(nn.Module):
    """The classifier on the first token (`<s>`): norm, dense, GELU, norm, dropout, linear.

    Not BERT's dropout + linear on a pooler: LTG-BERT has no pooler and no final LayerNorm, so its
    last hidden states are the raw residual stream, whose scale grows with depth; a head that
    normalizes first is what the LTG-BERT authors ship (`Classifier` in ltg/ltg-bert's
    modeling_ltgbert.py on the Hugging Face hub) and what the BabyLM 2025 pipeline puts on any
    encoder (evaluation_pipeline/finetune/classifier_model.py, `ClassifierHead`), so the 2024
    script's AutoModelForSequenceClassification and the 2025 fine-tuning train the same head.
    Dropout: `classifier_dropout`, else `hidden_dropout_prob` (the BERT convention).
    """

    def __init__(self, config: LtgBertConfig):
        super().__init__()
        h = config.hidden_size
        dropout = config.classifier_dropout
        self.pre_norm = _norm(h, config.layer_norm_eps)
        self.dense = nn.Linear(h, h)
        self.post_norm = _norm(h, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.out_proj = nn.Linear(h, config.num_labels)

    def forward(self, first: Tensor) -> Tensor:
        hidden = self.post_norm(F.gelu(self.dense(self.pre_norm(first))))
        return self.out_proj(self.dropout(hidden))


class LtgBertForSequenceClassification(LtgBertPreTrainedModel):
    """Encoder + `LtgBertClassifier`; loading a masked-LM export leaves the head freshly initialized
    (its keys are reported missing) and drops the LM head. `config.num_labels` sets the outputs;
    the loss follows `config.problem_type` as transformers' own classifiers do (1 label: regression)."""

    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def __init__(self, config: LtgBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ltgbert = LtgBertModel(config)
        self.classifier = LtgBertClassifier(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.ltgbert.word_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.ltgbert.word_embedding = value

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.ltgbert(input_ids, attention_mask=attention_mask,
                               output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(encoded.last_hidden_state[:, 0])
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels.to(logits.device))
        if not return_dict:
            output = (logits,) + ((encoded.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.view(-1).float(), labels.view(-1).float())
            return F.mse_loss(logits.float(), labels.float())
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels).float(), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
