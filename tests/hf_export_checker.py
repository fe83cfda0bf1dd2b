"""Check antlm Hugging Face exports with the transformers installed in *this* interpreter.

It imports only the standard library, torch and transformers, so the same checks run in the test
venv (transformers 5.x; tests/test_export.py imports `check`) and, as a script, in a venv with the
BabyLM 2025 pipeline's pins (transformers 4.51.3, tokenizers 0.21.1; tests/test_export_hf4.py),
where antlm is not installed. What antlm computes (ids, offsets, logits) arrives in a JSON spec,
on stdin for the script; the answer is a JSON report on stdout:
`{"transformers": VERSION, "failures": [...], "counts": {...}}`.

The objects are loaded the way the official tools load them: the 2025 zero-shot pipeline's
`AutoProcessor.from_pretrained(dir, padding_side="right", trust_remote_code=True)` and
`AutoModelFor{CausalLM,MaskedLM}` (evaluation_pipeline/sentence_zero_shot/dataset.py and run.py),
its fine-tuning's `AutoModel` + `AutoConfig.hidden_size` (finetune/classifier_model.py), and the
2024 script's `AutoConfig(num_labels=...)` + `AutoModelForSequenceClassification(config=...)`
(finetune_classification.py). The completion rule below restates, not copies, the 2025
pipeline's offset test (`process_causal_sentences` / `process_mlm_sentences`): a token belongs to
the completion when its end offset lies past the completion's first character.

Spec: {"exports": [{"name", "dir", "kind": "causal"|"masked", "specials": {"pad", "bos", "eos",
"mask"}, "texts": [...], "ids": [[...]] (with the export's special tokens), "offsets": [[[a, b]]],
"pairs": [[first, second, ids]], "completions": [[sentence, completion, positions]],
"logits": {"ids", "mask", "values"}, "tolerance": float}]}
"""
from __future__ import annotations

import json
import sys
from typing import Any

import torch

MAX_REPORTED = 5  # failures quoted per check; the counts say how many there were


def _quote(failures: list[str], message: str) -> None:
    if sum(f.split(":")[0] == message.split(":")[0] for f in failures) < MAX_REPORTED:
        failures.append(message)


def _load_info_problems(info: dict, allowed_missing: str = "", allowed_unexpected: str = "") -> list[str]:
    """Keys that did not load as they should; a fresh task head may be missing, a dropped one unexpected."""
    problems = []
    allowed = {"missing_keys": allowed_missing, "unexpected_keys": allowed_unexpected}
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        names = [str(n) for n in info.get(key, [])]
        if allowed.get(key):
            names = [n for n in names if not n.startswith(allowed[key])]
        if names:
            problems.append(f"{key}={names[:4]}")
    return problems


def check_tokenizer(name: str, tok, export: dict, counts: dict, failures: list[str], label: str) -> None:
    specials = export["specials"]
    got = {k: getattr(tok, f"{k}_token_id") for k in ("pad", "bos", "eos", "mask")}
    if got != {k: specials[k] for k in got}:
        failures.append(f"{name} {label} special ids: {got} instead of {specials}")
    if export["kind"] == "masked" and (tok.cls_token_id, tok.sep_token_id) != (specials["bos"], specials["eos"]):
        failures.append(f"{name} {label} cls/sep: {tok.cls_token_id}/{tok.sep_token_id}")
    if tok.padding_side != "right":
        failures.append(f"{name} {label} padding_side={tok.padding_side}")
    ids_wrong = offsets_wrong = 0
    for text, ids, offsets in zip(export["texts"], export["ids"], export["offsets"]):
        out = tok(text, return_offsets_mapping=True, verbose=False)
        if out["input_ids"] != ids:
            ids_wrong += 1
            _quote(failures, f"{name} {label} ids: {text!r}: {out['input_ids']} instead of {ids}")
        elif [list(o) for o in out["offset_mapping"]] != offsets:
            offsets_wrong += 1
            _quote(failures, f"{name} {label} offsets: {text!r}: {out['offset_mapping']} instead of {offsets}")
    counts[f"{name}/{label}/texts"] = len(export["texts"])
    counts[f"{name}/{label}/ids_differ"] = ids_wrong
    counts[f"{name}/{label}/offsets_differ"] = offsets_wrong

    # Fine-tuning batches: right padding with <pad>, the mask marks the real tokens.
    texts, rows = export["texts"][:8], export["ids"][:8]
    batch = tok(texts, padding=True, return_tensors="pt", verbose=False)
    width = max(len(r) for r in rows)
    want = torch.tensor([r + [specials["pad"]] * (width - len(r)) for r in rows])
    if not torch.equal(batch["input_ids"], want) or batch["attention_mask"].sum(1).tolist() != [len(r) for r in rows]:
        failures.append(f"{name} {label} padded batch differs from right-padding antlm's ids")
    for first, second, ids in export["pairs"]:
        if tok(first, second, verbose=False)["input_ids"] != ids:
            _quote(failures, f"{name} {label} pair: {first!r}, {second!r}")

    wrong = 0
    for sentence, completion, positions in export["completions"]:
        offsets = tok(sentence, return_offsets_mapping=True, verbose=False)["offset_mapping"]
        start = len(sentence) - len(completion)
        if export["kind"] == "causal":
            start += offsets[0][0]  # the causal rule adds the first token's start (0 for <s>)
        picked = [i for i, (_, end) in enumerate(offsets) if end > start]
        if picked != positions:
            wrong += 1
            _quote(failures, f"{name} {label} completion: {sentence!r} / {completion!r}: tokens {picked} instead of {positions}")
    counts[f"{name}/{label}/completions"] = len(export["completions"])
    counts[f"{name}/{label}/completions_differ"] = wrong


def _compare_logits(name: str, what: str, logits: torch.Tensor, spec: dict, tolerance: float, failures: list[str],
                    counts: dict) -> None:
    expected = torch.tensor(spec["values"], dtype=torch.float32)
    mask = torch.tensor(spec["mask"], dtype=torch.bool)
    if logits.shape != expected.shape:
        failures.append(f"{name} {what}: logits shape {tuple(logits.shape)} instead of {tuple(expected.shape)}")
        return
    error = (logits.float() - expected).abs()[mask].max().item()
    counts[f"{name}/{what}/max_abs_logit_error"] = error
    if not error <= tolerance:
        failures.append(f"{name} {what}: logits differ from antlm's by {error:.3g} (tolerance {tolerance:g})")


@torch.no_grad()
def check_models(name: str, export: dict, counts: dict, failures: list[str]) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers import AutoModelForSequenceClassification

    path, spec, tolerance = export["dir"], export["logits"], export["tolerance"]
    ids, mask = torch.tensor(spec["ids"]), torch.tensor(spec["mask"])
    if export["kind"] == "causal":
        model, info = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, output_loading_info=True)
        failures.extend(f"{name} AutoModelForCausalLM: {p}" for p in _load_info_problems(info))
        _compare_logits(name, "AutoModelForCausalLM", model.eval()(input_ids=ids, attention_mask=mask).logits,
                        spec, tolerance, failures, counts)
    else:
        model, info = AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True, output_loading_info=True)
        failures.extend(f"{name} AutoModelForMaskedLM: {p}" for p in _load_info_problems(info))
        model = model.eval()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            failures.append(f"{name} AutoModelForMaskedLM: the LM head is not tied to the embedding")
        _compare_logits(name, "AutoModelForMaskedLM", model(input_ids=ids, attention_mask=mask).logits,
                        spec, tolerance, failures, counts)
        # The 2025 fine-tuning: the bare encoder, its last_hidden_state, config.hidden_size.
        encoder, info = AutoModel.from_pretrained(path, trust_remote_code=True, output_loading_info=True)
        failures.extend(f"{name} AutoModel: {p}" for p in _load_info_problems(info))
        hidden = encoder.eval()(input_ids=ids, attention_mask=mask)
        if hasattr(hidden, "logits") or hidden.last_hidden_state.shape[-1] != AutoConfig.from_pretrained(
                path, trust_remote_code=True).hidden_size:
            failures.append(f"{name} AutoModel: no last_hidden_state of config.hidden_size")
        reference = hidden.last_hidden_state
    # The 2024 fine-tuning script: AutoConfig with num_labels, then the classifier with that config.
    for num_labels, labels in ((3, torch.tensor([0, 2, 1])), (1, torch.tensor([0.5, -1.0, 2.0]))):
        config = AutoConfig.from_pretrained(path, num_labels=num_labels, finetuning_task="x", trust_remote_code=True)
        classifier, info = AutoModelForSequenceClassification.from_pretrained(
            path, config=config, trust_remote_code=True, output_loading_info=True)
        what = f"AutoModelForSequenceClassification(num_labels={num_labels})"
        # Stock Llama drops its LM head and adds `score`; LTG-BERT ignores its head by name.
        head, dropped = ("score.", "lm_head.") if export["kind"] == "causal" else ("classifier.", "")
        failures.extend(f"{name} {what}: {p}" for p in _load_info_problems(info, head, dropped))
        if not info.get("missing_keys"):
            failures.append(f"{name} {what}: the fresh head was loaded from the export?")
        classifier = classifier.eval()
        rows = ids[:3]
        out = classifier(input_ids=rows, attention_mask=mask[:3], labels=labels)
        if classifier.config.num_labels != num_labels or tuple(out.logits.shape) != (3, num_labels):
            failures.append(f"{name} {what}: logits {tuple(out.logits.shape)}, num_labels {classifier.config.num_labels}")
        if not torch.isfinite(out.loss):
            failures.append(f"{name} {what}: loss {out.loss}")
        if export["kind"] == "masked":
            # The encoder inside the classifier is the exported one, not re-initialized.
            inner = classifier.ltgbert(input_ids=rows, attention_mask=mask[:3]).last_hidden_state
            if not torch.allclose(inner, reference[:3], atol=1e-6):
                failures.append(f"{name} {what}: encoder states differ from AutoModel's")
            # Padding is invisible: a row alone equals the same row padded in a batch.
            length = int(mask[1].sum())
            alone = classifier(input_ids=rows[1:2, :length]).logits
            if not torch.allclose(alone, out.logits[1:2], atol=1e-5):
                failures.append(f"{name} {what}: right padding changes the logits")


def check(spec: dict[str, Any]) -> dict[str, Any]:
    import transformers
    from transformers import AutoProcessor, AutoTokenizer

    failures: list[str] = []
    counts: dict[str, Any] = {}
    for export in spec["exports"]:
        name, path = export["name"], export["dir"]
        loaders = {
            "AutoProcessor": lambda: AutoProcessor.from_pretrained(path, padding_side="right", trust_remote_code=True),
            "AutoTokenizer": lambda: AutoTokenizer.from_pretrained(path, trust_remote_code=True),
        }
        for label, load in loaders.items():
            try:
                tok = load()
                tok = getattr(tok, "tokenizer", tok)  # a processor wraps it; a tokenizer is its own
                check_tokenizer(name, tok, export, counts, failures, label)
            except Exception as err:  # a report, not a traceback: the other checks still run
                failures.append(f"{name} {label}: {type(err).__name__}: {err}")
        if "logits" in export:
            try:
                check_models(name, export, counts, failures)
            except Exception as err:
                failures.append(f"{name} models: {type(err).__name__}: {err}")
    return {"transformers": transformers.__version__, "failures": failures, "counts": counts}


if __name__ == "__main__":
    torch.set_num_threads(1)
    json.dump(check(json.load(sys.stdin)), sys.stdout)
