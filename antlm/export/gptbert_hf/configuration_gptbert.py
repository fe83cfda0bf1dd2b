"""Configuration of a GPT-BERT model exported from antlm (standalone: torch + transformers)."""
from transformers import PretrainedConfig


class GptBertConfig(PretrainedConfig):
    model_type = "antlm-gptbert"

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 384,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 6,
        intermediate_size: int = 1280,
        max_position_embeddings: int = 128,
        position_bucket_size: int = 32,
        position_bucket_max: int = 512,
        layer_norm_eps: float = 1e-5,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        geglu_gelu: str = "tanh",
        ffn_mid_dropout: bool = False,
        attention_gate: bool = True,
        layer_weighting: bool = True,
        classifier_dropout: float = 0.1,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        mask_token_id: int = 3,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        # Distances are exact up to +-position_bucket_size//2, log-bucketed up to position_bucket_max.
        self.position_bucket_size = position_bucket_size
        self.position_bucket_max = position_bucket_max
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.geglu_gelu = geglu_gelu
        self.ffn_mid_dropout = ffn_mid_dropout
        self.attention_gate = attention_gate
        self.layer_weighting = layer_weighting
        self.classifier_dropout = classifier_dropout
        self.mask_token_id = mask_token_id
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)
