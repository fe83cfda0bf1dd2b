"""Export a trained antlm model to a Hugging Face `transformers` directory.

* BabyLlama -> stock `LlamaForCausalLM` (no remote code). BabyLlama already uses Llama's parameter
  names and rotate-half rotary convention, so the export only prefixes names with `model.`.
  The rotary base is written both as `rope_parameters` (how transformers >= 5 reads it; a
  top-level `rope_theta` is folded into it) and as top-level `rope_theta` (transformers 4.x).
* LTG-BERT -> `LtgBertForMaskedLM`, shipped as model code next to the weights (ltgbert_hf/) and
  wired through `auto_map`, so `AutoModelForMaskedLM.from_pretrained(dir, trust_remote_code=True)`
  loads it. The LM head's decoder is tied to the word embedding; only the embedding is stored.
  `AutoModel` (the encoder: the 2025 pipeline's fine-tuning) and
  `AutoModelForSequenceClassification` (a fresh classifier head: the 2024 pipeline's
  finetune_classification.py) load the same files. `write_encoder_export` writes what any
  encoder export needs (weights, config.json with auto_map, shipped code, `<s> $A </s>` tokenizer),
  so another encoder backbone (GPT-BERT: gptbert_hf/, which adds AutoModelForCausalLM) only adds
  its state dict, its config and its `ShippedCode`.

Special tokens. antlm scores a sentence causally after a `<s>` token, and its masked-LM
objective sees plain token sequences. The exported tokenizers add special tokens the way each
model family's users (and scorers such as minicons) expect from a plain `tokenizer(text)` call:
  * Llama export: `<s> $A` (BOS prepended, no EOS). `tokenizer(s).input_ids[1:]` are antlm's ids,
    and scoring tokens 1.. of that sequence reproduces antlm's causal score.
  * LTG-BERT export: `<s> $A </s>`, with `<s>`/`</s>` also declared as cls/sep tokens, which is
    what minicons' MaskedLMScorer uses to find the positions it must not mask.
Pass `add_special_tokens=False` to get antlm's bare ids; with minicons, leave its `bos_token`
option off for the Llama export (the tokenizer already adds `<s>`).

The tokenizer gives antlm's ids under transformers 4.x and 5.x alike. tokenizer.json keeps
antlm's byte-level pre-tokenizer (with its prefix space), and tokenizer_config.json names
`add_prefix_space` explicitly: transformers 4.x's `PreTrainedTokenizerFast` rebuilds the
pre-tokenizer from that key (default False) and would otherwise drop the space before each
text's first word. Offsets are the pre-tokenizer's, untrimmed: a token " dog" spans its space,
and the prefix-space token of "The" spans "T". The 2025 pipeline picks a completion's tokens as
those whose end offset passes the completion's start (sentence_zero_shot/dataset.py,
`process_mlm_sentences`); untrimmed offsets keep every token of antlm's encoding in that range.
Each export is re-read with the installed transformers before it is published, and one that
would tokenize differently is refused.

transformers 5's AutoTokenizer reads config.json first, so for the LTG-BERT export it asks about
remote code unless given `trust_remote_code=True` (answering no still loads the tokenizer).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, processors

from antlm.atomic import replace_dir
from antlm.config_types import bucket_max
from antlm.data.tokenizer import BOS, EOS, MASK, PAD, UNK
from antlm.errors import UserError
from antlm.model_io import load_model


@dataclass(frozen=True)
class ShippedCode:
    """Model code copied into an export and named in config.json's `auto_map`.

    `config_class` and every entry of `classes` are "module.Class" names of files in `directory`;
    `classes` maps a transformers Auto class (AutoModel, AutoModelForMaskedLM, ...) to one.
    """
    directory: Path
    config_class: str
    classes: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> tuple[str, ...]:
        modules = [self.config_class.split(".")[0]] + [name.split(".")[0] for name in self.classes.values()]
        return tuple(f"{module}.py" for module in dict.fromkeys(modules))

    def auto_map(self) -> dict[str, str]:
        return {"AutoConfig": self.config_class, **self.classes}

    def copy_into(self, directory: Path) -> None:
        for name in self.files:
            shutil.copyfile(self.directory / name, directory / name)


SHIPPED_CODE = Path(__file__).resolve().parent / "ltgbert_hf"
LTGBERT_CODE = ShippedCode(SHIPPED_CODE, "configuration_ltgbert.LtgBertConfig", {
    "AutoModel": "modeling_ltgbert.LtgBertModel",
    "AutoModelForMaskedLM": "modeling_ltgbert.LtgBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_ltgbert.LtgBertForSequenceClassification",
})
LTGBERT_FILES = LTGBERT_CODE.files
# Strings whose tokenization a transformers version has got wrong before (first-word prefix
# space) or could (spaces, newlines, multi-byte characters); every export is checked on them.
TOKENIZER_PROBES = ("The dog runs.", " a leading space", "two  spaces and\nA: a newline", "naïve café – 東京",
                    "Ali sees the candle. Ali believes that the candle is in the bakery.")


def _require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("exporting to Hugging Face needs the transformers package (pip install transformers)") from None
    return transformers


def export_hf(model_path: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Write a `transformers` directory for the antlm model at `model_path` (run dir or final/).

    Refuses a non-empty `out_dir` unless `force`; the directory appears complete or not at all.
    """
    _require_transformers()
    out = Path(out_dir)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty (use --force to replace it)")
    source = Path(model_path).resolve()
    if out.resolve() == source or out.resolve() in source.parents:
        # --force would replace the directory that holds the model being exported.
        raise UserError(f"the export directory {out} must not contain the model {model_path}")
    model, tokenizer = load_model(model_path)
    meta = model.antlm_meta
    backbone = meta.backbone
    if backbone == "ltgbert" and meta.mlm_target_offset != 0:
        # A masked-LM class promises in-place predictions; shifted (MNTP) logits would silently
        # score the wrong tokens under any HF masked-LM scorer.
        raise UserError("only LTG-BERT models trained with mlm.target_offset=0 can be exported as a masked LM")

    writers = {"babyllama": _write_llama, "ltgbert": _write_ltgbert, "gptbert": _write_gptbert}
    if backbone not in writers:
        raise UserError(f"cannot export backbone '{backbone}' to Hugging Face")
    out.parent.mkdir(parents=True, exist_ok=True)
    with replace_dir(out) as tmp:
        writers[backbone](tmp, model, tokenizer)
    return out


def _save_weights(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    # Cloning breaks any storage sharing, which safetensors refuses; "pt" is what transformers checks.
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {name: tokenizer.token_to_id(tok) for name, tok in
            (("pad", PAD), ("bos", BOS), ("eos", EOS), ("mask", MASK), ("unk", UNK))}


def _prefix_space(tokenizer: Tokenizer) -> bool | None:
    """The byte-level pre-tokenizer's add_prefix_space (None: no such pre-tokenizer)."""
    state = json.loads(tokenizer.to_str()).get("pre_tokenizer") or {}
    parts = state.get("pretokenizers", [state]) if state.get("type") == "Sequence" else [state]
    values = [part["add_prefix_space"] for part in parts if part.get("type") == "ByteLevel"]
    return values[0] if values else None


def _write_tokenizer(directory: Path, tokenizer: Tokenizer, single: str, pair: str, max_len: int,
                     **special: str) -> None:
    from transformers import PreTrainedTokenizerFast

    ids = _special_ids(tokenizer)
    hf_tok = Tokenizer.from_str(tokenizer.to_str())  # a copy: the loaded tokenizer stays untouched
    hf_tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(BOS, ids["bos"]), (EOS, ids["eos"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=hf_tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, mask_token=MASK,
        unk_token=UNK, model_max_length=max_len, clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"], **special)
    fast.save_pretrained(str(directory))
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    # transformers 5 writes its own class name (TokenizersBackend), which 4.x cannot resolve;
    # PreTrainedTokenizerFast loads the same tokenizer.json under both.
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    prefix_space = _prefix_space(hf_tok)
    if prefix_space is not None:
        # 4.x rewrites the pre-tokenizer to this value (False when absent); 5.x only records it.
        config["add_prefix_space"] = prefix_space
    # The pipelines pad on the right (and the 2025 one asks for it); say so rather than rely on defaults.
    config["padding_side"] = config["truncation_side"] = "right"
    _write_json(config_path, config)
    _check_tokenizer(directory, hf_tok)


def _check_tokenizer(directory: Path, expected: Tokenizer) -> None:
    """Refuse an export that the installed transformers would tokenize unlike antlm."""
    import transformers
    from transformers import PreTrainedTokenizerFast

    # The class tokenizer_config.json names, which is what AutoTokenizer builds, without reading
    # config.json (whose auto_map would import the shipped model code).
    loaded = PreTrainedTokenizerFast.from_pretrained(str(directory))
    for text in TOKENIZER_PROBES:
        want = expected.encode(text)
        got = loaded(text, return_offsets_mapping=True, verbose=False)
        if got["input_ids"] != want.ids or [tuple(o) for o in got["offset_mapping"]] != want.offsets:
            raise UserError(f"transformers {transformers.__version__} tokenizes the export unlike antlm "
                            f"({text!r}: {got['input_ids']} instead of {want.ids}); please report this")


def llama_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """BabyLlama names are LlamaModel names; only the LM head lives outside `model.`."""
    return {(name if name.startswith("lm_head.") else f"model.{name}"): tensor
            for name, tensor in model.state_dict().items()}


def llama_config(cfg, tokenizer: Tokenizer) -> dict:
    ids = _special_ids(tokenizer)
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "intermediate_size": cfg.ffn_size,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads, "head_dim": cfg.hidden_size // cfg.num_heads,
        "hidden_act": "silu", "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False, "mlp_bias": False, "attention_dropout": cfg.attention_dropout,
        "tie_word_embeddings": False, "initializer_range": cfg.init_std, "use_cache": True,
        "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
        "dtype": "float32",
    }


def _write_llama(directory: Path, model, tokenizer: Tokenizer) -> None:
    _save_weights(directory / "model.safetensors", llama_state_dict(model))
    _write_json(directory / "config.json", llama_config(model.cfg, tokenizer))
    _write_json(directory / "generation_config.json", {
        "bos_token_id": tokenizer.token_to_id(BOS), "eos_token_id": tokenizer.token_to_id(EOS),
        "pad_token_id": tokenizer.token_to_id(PAD)})
    _write_tokenizer(directory, tokenizer, single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                     max_len=model.cfg.max_seq_len)


def ltgbert_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Encoder weights move under `ltgbert.`; the tied decoder weight is left to weight tying."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "head.decoder.weight":
            continue
        state[name if name.startswith("head.") else f"ltgbert.{name}"] = tensor
    return state


def ltgbert_config(cfg, tokenizer: Tokenizer) -> dict:
    ids = _special_ids(tokenizer)
    return {
        "architectures": ["LtgBertForMaskedLM"], "model_type": "antlm-ltgbert",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.ffn_size,
        "max_position_embeddings": cfg.max_seq_len, "position_bucket_size": cfg.position_buckets,
        "position_bucket_max": bucket_max(cfg), "geglu_gelu": cfg.gelu, "ffn_mid_dropout": cfg.ffn_mid_dropout,
        "layer_norm_eps": cfg.norm_eps, "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout, "initializer_range": cfg.init_std,
        "pad_token_id": ids["pad"], "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
        "mask_token_id": ids["mask"], "tie_word_embeddings": True, "dtype": "float32",
    }


def write_encoder_export(directory: Path, state: dict[str, torch.Tensor], config: dict, code: ShippedCode,
                         tokenizer: Tokenizer, max_len: int) -> None:
    """An encoder export: weights, config.json (with `code`'s auto_map), the shipped code, and a
    tokenizer that wraps text as `<s> $A </s>` (pairs `<s> $A </s> $B </s>`) with `<s>`/`</s>` as
    cls/sep, which masked-LM scorers and fine-tuning scripts read."""
    _save_weights(directory / "model.safetensors", state)
    _write_json(directory / "config.json", {**config, "auto_map": code.auto_map()})
    code.copy_into(directory)
    _write_tokenizer(directory, tokenizer, single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} $B {EOS}",
                     max_len=max_len, cls_token=BOS, sep_token=EOS)


def _write_ltgbert(directory: Path, model, tokenizer: Tokenizer) -> None:
    write_encoder_export(directory, ltgbert_state_dict(model), ltgbert_config(model.cfg, tokenizer),
                         LTGBERT_CODE, tokenizer, model.cfg.max_seq_len)


GPTBERT_CODE = Path(__file__).resolve().parent / "gptbert_hf"
GPTBERT_SHIPPED = ShippedCode(GPTBERT_CODE, "configuration_gptbert.GptBertConfig", {
    "AutoModel": "modeling_gptbert.GptBertModel",
    "AutoModelForMaskedLM": "modeling_gptbert.GptBertForMaskedLM",
    "AutoModelForCausalLM": "modeling_gptbert.GptBertForCausalLM",
    "AutoModelForSequenceClassification": "modeling_gptbert.GptBertForSequenceClassification",
})
GPTBERT_FILES = GPTBERT_SHIPPED.files


def gptbert_config(cfg, tokenizer: Tokenizer, target_offset: int) -> dict:
    """GPT-BERT -> GptBertFor{MaskedLM,CausalLM,SequenceClassification} (gptbert_hf/, trust_remote_code)."""
    if target_offset != 1:
        # The shipped classes read MNTP outputs (position k predicts k+1) under both masks.
        raise UserError("only GPT-BERT models trained with mlm.target_offset=1 (MNTP) can be exported")
    ids = _special_ids(tokenizer)
    return {
        "architectures": ["GptBertForMaskedLM"], "model_type": "antlm-gptbert",
        "auto_map": GPTBERT_SHIPPED.auto_map(),
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.ffn_size,
        "max_position_embeddings": cfg.max_seq_len, "position_bucket_size": cfg.position_buckets,
        "position_bucket_max": bucket_max(cfg), "geglu_gelu": cfg.gelu, "ffn_mid_dropout": cfg.ffn_mid_dropout,
        "attention_gate": cfg.attention_gate, "layer_weighting": cfg.layer_weighting,
        "layer_norm_eps": cfg.norm_eps, "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attention_dropout, "classifier_dropout": cfg.dropout or 0.1,
        "pad_token_id": ids["pad"], "bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
        "mask_token_id": ids["mask"], "tie_word_embeddings": True, "dtype": "float32",
    }


def _write_gptbert(directory: Path, model, tokenizer: Tokenizer) -> None:
    config = gptbert_config(model.cfg, tokenizer, model.antlm_meta.mlm_target_offset)
    state = {(name if name.startswith("head.") else f"gptbert.{name}"): tensor
             for name, tensor in model.state_dict().items() if name != "head.decoder.weight"}
    write_encoder_export(directory, state, config, GPTBERT_SHIPPED, tokenizer, model.cfg.max_seq_len)


@torch.inference_mode()
def hf_causal_logprobs(hf_dir: str | Path, sentences: list[str], batch_size: int = 32) -> list[float]:
    """Sum of token log-probs of each sentence after `<s>`, computed with plain transformers.

    The same convention as antlm.eval.scoring.causal_logprobs, so the two agree on an export.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir)).eval()
    bos = tokenizer.bos_token_id
    scores = []
    for start in range(0, len(sentences), batch_size):
        rows = [tokenizer(s).input_ids for s in sentences[start:start + batch_size]]
        rows = [r if r[:1] == [bos] else [bos] + r for r in rows]  # whatever the template does
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        scores.extend((logprobs * mask[:, 1:]).sum(dim=1).tolist())
    return scores
