"""`antlm eval DIR` on a local Hugging Face `transformers` directory: a causal LM
(`AutoModelForCausalLM`: GPT-2, Llama, antlm's BabyLlama export) for the causal backend, a masked LM
(`AutoModelForMaskedLM`, remote code allowed: antlm's LTG-BERT and GPT-BERT exports, BERT-like
models) for mlm and mntp, each with its own tokenizer, as the 2025 pipeline loads them. The wrappers
give the scorers the interface of antlm's own models, so the pipelines, outputs and speed-ups are
the same. Nothing is downloaded: the directory must hold the weights and a fast tokenizer."""
from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from antlm.errors import UserError
from antlm.eval.pipelines.base import SpecialTokens
from antlm.models.kv_cache import KVCache


def is_hf_directory(path: Path) -> bool:
    """A `transformers` config.json (it names a `model_type`) that is not antlm's own `final/`."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        meta = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") != "antlm" and "model_type" in meta


@dataclass
class WindowConfig:
    max_seq_len: int
    vocab_size: int


@dataclass(frozen=True)
class HFMeta:
    """What the scorers read of a model's metadata (antlm's own models carry model_io.ModelMeta)."""
    backbone: str
    mlm_target_offset: int


def special_tokens_of(hf_tokenizer) -> SpecialTokens:
    text = "a b"
    plain = list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    full = list(hf_tokenizer(text)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return SpecialTokens(tuple(full[:start]), tuple(full[start + len(plain):]), hf_tokenizer.mask_token_id)
    raise UserError("the tokenizer changes a text's own tokens when it adds its special tokens; antlm cannot score with it")


def _max_positions(config) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 20


class HFCausalLM(torch.nn.Module):
    """An `AutoModelForCausalLM` behind antlm's causal interface: `model(ids, causal=True,
    target_mask=...)`, and `decode` / `logits_at` for cached prefixes."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.cfg = WindowConfig(_max_positions(model.config), model.get_output_embeddings().weight.size(0))
        if not (hasattr(model.config, "rope_theta") or "rope_parameters" in model.config.to_dict()):
            self.extend_positions = None  # learned absolute positions end at the window
        if not self._cache_matches():
            self.decode = None  # e.g. logits post-processing beyond the output embeddings: run inputs whole

    def forward(self, input_ids: torch.Tensor, causal: bool = True, target_mask: Optional[torch.Tensor] = None, **_):
        if not causal:
            raise UserError("a causal Hugging Face model has no bidirectional mode: score it with --backend causal")
        logits = self.model(input_ids=input_ids).logits
        return logits[target_mask] if target_mask is not None else logits

    def extend_positions(self, length: int) -> None:
        """Rotary models read past their window in `transformers`, and the 2025 pipeline does not cut."""
        self.cfg.max_seq_len = max(self.cfg.max_seq_len, length)

    def decode(self, input_ids: torch.Tensor, past: Optional[KVCache] = None) -> tuple[torch.Tensor, KVCache]:
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=past.layers) if past is not None else DynamicCache()
        base = self.model.base_model
        # transformers 5.2x renamed `past_key_values` to `cache`; both name the same object.
        name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        out = base(input_ids=input_ids, use_cache=True, **{name: cache})
        cache = getattr(out, name)
        layers = getattr(cache, "layers", None)
        pairs = ([(layer.keys, layer.values) for layer in layers] if layers is not None
                 else list(zip(cache.key_cache, cache.value_cache)))
        return out.last_hidden_state, KVCache(pairs)

    def logits_at(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.get_output_embeddings()(hidden)

    @torch.inference_mode()
    def _cache_matches(self) -> bool:
        """The cached path (base model, cache, output embeddings) must give the model's own logits."""
        vocab = self.model.get_output_embeddings().weight.size(0)
        ids = torch.arange(1, 7, device=self.model.device)[None] % vocab
        try:
            first, cache = self.decode(ids[:, :3])
            second, _ = self.decode(ids[:, 3:], cache)
            cached = self.logits_at(torch.cat([first, second], dim=1))
        except (TypeError, ValueError, AttributeError, RuntimeError):
            return False
        return (cached - self.model(input_ids=ids).logits).abs().max().item() < 1e-4


class HFMaskedLM(torch.nn.Module):
    """An `AutoModelForMaskedLM` behind antlm's masked interface: `model(ids, causal=False,
    query_index=...)` gives the logits at one position per row."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.cfg = WindowConfig(_max_positions(model.config), model.get_output_embeddings().weight.size(0))

    def forward(self, input_ids: torch.Tensor, causal: bool = False, query_index: Optional[torch.Tensor] = None, **_):
        if causal:
            raise UserError("a masked Hugging Face model is scored with --backend mlm or mntp, not causal")
        logits = self.model(input_ids=input_ids).logits
        if query_index is None:
            return logits
        return logits[torch.arange(logits.size(0), device=logits.device), query_index]


def load_hf_model(directory: Path, backend: str, device: str):
    """(wrapped model in eval mode, the tokenizer's `tokenizers.Tokenizer`, SpecialTokens)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise UserError("scoring a Hugging Face directory needs transformers (pip install 'antlm[hf]')") from None
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if backend not in ("causal", "mlm", "mntp"):
        raise UserError(f"a Hugging Face directory is scored with one backend, causal, mlm or mntp (not {backend})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the tokenizer of {directory}: {str(err).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{directory}: antlm scores with a fast tokenizer (tokenizer.json); this one is not")
    special = special_tokens_of(tokenizer)
    auto = AutoModelForCausalLM if backend == "causal" else AutoModelForMaskedLM
    try:
        model = auto.from_pretrained(str(directory), trust_remote_code=True)
    except ValueError as err:
        kind = "causal-LM" if backend == "causal" else "masked-LM"
        other = "mlm or mntp" if backend == "causal" else "causal"
        raise UserError(f"{directory} has no {kind} class ({str(err).splitlines()[0][:120]}): try --backend {other}") from None
    except OSError as err:
        raise UserError(f"cannot load the model in {directory}: {str(err).splitlines()[0]}") from None
    if backend != "causal" and special.mask_id is None:
        raise UserError(f"{directory}: the tokenizer has no mask token, so --backend {backend} cannot mask")
    wrapped = HFCausalLM(model) if backend == "causal" else HFMaskedLM(model)
    # The backend asked for decides where a masked prediction is read (the 2025 pipeline's choice).
    wrapped.antlm_meta = HFMeta(f"hf-{model.config.model_type}", 1 if backend == "mntp" else 0)
    return wrapped.to(device).eval(), tokenizer.backend_tokenizer, special
