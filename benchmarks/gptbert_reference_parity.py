#!/usr/bin/env python
"""antlm's GPT-BERT against the reference model (ltgoslo/gpt-bert `pretraining/model_extra.py`):
the same random weights in both, the same inputs, logits compared in both directions.

The reference file is read from where you have it (never copied into antlm): a path to
model_extra.py, or a git directory of ltgoslo/gpt-bert (the file is read from its HEAD).

Run:  .venv/bin/python benchmarks/gptbert_reference_parity.py --reference PATH [--seq-len 128]
Prints `RESULT causal=<bool> max_abs_diff=<x> max_logit=<y>` per direction, and exits 1 when a
difference exceeds --tolerance (1e-4, fp32).

What is compared: embedding, gated attention with its parameter-free norm before out_proj, the
depth-weighted layer average (its weights are randomised, so an identity init cannot hide a
mistake), the FFN and the tied LM head; both with 512-distance position buckets and eps 1e-5.
The reference takes [T, B] inputs and a [B, T, T] mask with True = blocked.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from antlm.config import ModelConfig  # noqa: E402
from antlm.models.gptbert import GptBert  # noqa: E402


def load_reference(path: Path):
    if path.is_dir():
        source = subprocess.run(["git", "-C", str(path), "show", "HEAD:pretraining/model_extra.py"],
                                capture_output=True, text=True, check=True).stdout
        handle = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
        handle.write(source)
        handle.close()
        path = Path(handle.name)
    spec = importlib.util.spec_from_file_location("gptbert_reference_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weight_map(num_layers: int) -> dict[str, str]:
    """reference name -> antlm name (the decoder weight is tied to the word embedding in both)."""
    names = {
        "embedding.word_embedding.weight": "word_embedding.weight",
        "embedding.relative_embedding": "relative_embedding",
        "embedding.relative_layer_norm.weight": "relative_norm.weight",
        "embedding.relative_layer_norm.bias": "relative_norm.bias",
        "classifier.nonlinearity.1.weight": "head.dense.weight",
        "classifier.nonlinearity.1.bias": "head.dense.bias",
        "classifier.nonlinearity.5.bias": "head.decoder.bias",
    }
    for i in range(num_layers):
        for proj in ("in_proj_qk", "in_proj_vg", "out_proj"):
            for kind in ("weight", "bias"):
                names[f"transformer.attention_layers.{i}.{proj}.{kind}"] = f"layers.{i}.attention.{proj}.{kind}"
        names[f"transformer.mlp_layers.{i}.mlp.1.weight"] = f"layers.{i}.feed_forward.up.weight"
        names[f"transformer.mlp_layers.{i}.mlp.4.weight"] = f"layers.{i}.feed_forward.down.weight"
    for j in range(2 * num_layers):
        names[f"transformer.dwa_modules.alphas.{j}"] = f"layer_weights.{j}"
    return names


def compare(reference_path: Path, seq_len: int, batch: int, seed: int) -> list[tuple[bool, float, float]]:
    reference = load_reference(reference_path)
    hidden, layers, heads, ffn, vocab, buckets = 64, 3, 4, 96, 300, 32
    ref_cfg = SimpleNamespace(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=ffn, vocab_size=vocab, max_position_embeddings=512,
                              position_bucket_size=buckets, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    ref_model = reference.Bert(ref_cfg).eval()
    with torch.no_grad():  # move every weight off its init (norm gains, zero biases, identity alphas)
        for param in ref_model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    ours = GptBert(ModelConfig(backbone="gptbert", hidden_size=hidden, num_layers=layers, num_heads=heads,
                               ffn_size=ffn, vocab_size=vocab, max_seq_len=max(seq_len, 16), position_buckets=buckets,
                               position_max=512, norm_eps=1e-5, gelu="tanh")).eval()
    ref_state = ref_model.state_dict()
    state = {ours_name: ref_state[ref_name] for ref_name, ours_name in weight_map(layers).items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert set(missing) <= {"head.decoder.weight"} and not unexpected, (missing, unexpected)

    ids = torch.randint(16, vocab, (batch, seq_len))
    results = []
    with torch.no_grad():
        for causal in (False, True):
            blocked = torch.zeros(batch, seq_len, seq_len, dtype=torch.bool)
            if causal:
                blocked |= torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
            contextual = ref_model.get_contextualized(ids.t(), blocked)
            ref_logits = ref_model.classifier.nonlinearity(contextual).transpose(0, 1)
            our_logits = ours(ids, causal=causal)
            diff = (ref_logits - our_logits).abs().max().item()
            results.append((causal, diff, ref_logits.abs().max().item()))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="model_extra.py or a ltgoslo/gpt-bert git dir")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    worst = 0.0
    for causal, diff, scale in compare(args.reference, args.seq_len, args.batch, args.seed):
        print(f"RESULT causal={causal} max_abs_diff={diff:.3g} max_logit={scale:.3g}")
        worst = max(worst, diff)
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
