"""Configuration of an LTG-BERT masked LM exported from antlm (standalone: torch + transformers)."""
from typing import Optional

from transformers import PretrainedConfig


class LtgBertConfig(PretrainedConfig):
    model_type = "antlm-ltgbert"

    def __init__(
        self,
        vocab_size: int = 16000,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 2048,
        max_position_embeddings: int = 128,
        position_bucket_size: int = 32,
        layer_norm_eps: float = 1e-5,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        mask_token_id: int = 3,
        tie_word_embeddings: bool = True,
        position_bucket_max: Optional[int] = None,
        geglu_gelu: str = "exact",
        ffn_mid_dropout: bool = True,
        classifier_dropout: Optional[float] = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        # Relative distances are exact up to +-position_bucket_size//2 and log-bucketed beyond.
        self.position_bucket_size = position_bucket_size
        # The distance at which the log buckets reach the table edge (+1); None: max_position_embeddings.
        # The defaults of these three are what exports made before they existed computed.
        self.position_bucket_max = position_bucket_max
        self.geglu_gelu = geglu_gelu
        self.ffn_mid_dropout = ffn_mid_dropout
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        # Dropout before the sequence classifier's output layer; None: hidden_dropout_prob.
        self.classifier_dropout = classifier_dropout
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
