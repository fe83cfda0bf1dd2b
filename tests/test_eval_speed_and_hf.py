"""Evaluation at research-loop speed and for any local model: shared context scored once from a KV
cache gives today's scores and decisions; a stock GPT-2-shaped and BERT-shaped random model and
antlm's own exports are scored as the 2025 method scores them; ties are counted; empty task lists
are refused."""
import importlib.util
import os
import random
import sys

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")

from antlm.cli import main as cli_main  # noqa: E402
from antlm.data.tokenizer import train_tokenizer  # noqa: E402
from antlm.eval import scoring  # noqa: E402
from antlm.eval.pipelines import babylm2025  # noqa: E402
from antlm.eval.runner import EvalOptions, load_scored_model, score_items, summarize  # noqa: E402
from antlm.eval.tasks import Item  # noqa: E402
from antlm.export.hf import export_hf  # noqa: E402
from antlm.model_io import load_model  # noqa: E402
from conftest import REPO, WORDS, save_random_model  # noqa: E402
from hf_stock_models import bert_directory, gpt2_directory  # noqa: E402


def _benchmark():
    spec = importlib.util.spec_from_file_location("zeroshot2025", REPO / "benchmarks" / "zeroshot2025.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def synthetic_items(count: int = 24, seed: int = 0) -> list[Item]:
    """Items of the three shapes the fast sets have: minimal pairs (BLiMP), a context and two
    targets (EWoK), a long context and five options that follow it directly (entity tracking)."""
    rng = random.Random(seed)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    items = []
    for index in range(count):
        stem = sentence(rng.randint(0, 4))
        pair = tuple(f"{stem} {sentence(rng.randint(2, 6))} .".strip() for _ in range(2))
        items.append(Item(f"pair_{index}", "", pair))
        context, targets = sentence(rng.randint(6, 12)) + " .", tuple(sentence(rng.randint(2, 5)) + " ." for _ in range(2))
        items.append(Item(f"ewok_{index}", context, targets, tuple(f"{context} {t}" for t in targets),
                          tuple(f" {t}" for t in targets)))
        prefix = "Box 1 contains " + sentence(rng.randint(10, 25)) + " . Box 1 contains "
        options = tuple(sentence(rng.randint(1, 4)) for _ in range(5))
        items.append(Item(f"entity_{index}", prefix, options, tuple(prefix + o for o in options), options))
    return items


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(1)
    return train_tokenizer([" ".join(rng.choice(WORDS + ["Box", "1", "contains"]) for _ in range(9)) + " ."
                            for _ in range(600)], vocab_size=300)


def _decisions(scores):
    return [max(range(len(row)), key=row.__getitem__) for row in scores]


def _assert_same(ours, theirs, tolerance=1e-4):
    worst = max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x, y))
    assert worst < tolerance, worst
    assert _decisions(ours) == _decisions(theirs)


@pytest.mark.parametrize("backbone", ["babyllama", "ltgbert", "gptbert"])
@pytest.mark.parametrize("mode", ["babylm2025", "babylm2024", "clean"])
def test_shared_context_scores_equal_whole_inputs(tmp_path, tokenizer, backbone, mode):
    """Every backbone scored causally, in every compat mode: the cached path gives the scores (to
    1e-4) and decisions of running every option whole, at two temperatures."""
    run = save_random_model(tmp_path / backbone, tokenizer, backbone, **{"model.max_seq_len": 256, "data.seq_len": 256})
    model, tok = load_model(run)
    items = synthetic_items()
    whole = score_items(model, tok, items, "causal", EvalOptions(compat=mode, shared_prefix=False, temperatures=[1.0, 2.0]),
                        log=lambda m: None)
    shared = score_items(model, tok, items, "causal", EvalOptions(compat=mode, temperatures=[1.0, 2.0]), log=lambda m: None)
    for temperature in (1.0, 2.0):
        _assert_same(shared[temperature], whole[temperature])


def test_shared_context_runs_the_context_once(tmp_path, tokenizer):
    """The entity-tracking shape: the cached path feeds the model far fewer tokens."""
    model, tok = load_model(save_random_model(tmp_path / "m", tokenizer, "babyllama",
                                              **{"model.max_seq_len": 256, "data.seq_len": 256}))
    items = [i for i in synthetic_items() if i.id.startswith("entity")]
    fed = {"tokens": 0}
    for name in ("forward", "hidden_states", "decode"):
        method = getattr(model, name)

        def counting(ids, *args, _method=method, **kwargs):
            fed["tokens"] += ids.numel()
            return _method(ids, *args, **kwargs)
        setattr(model, name, counting)
    counts = {}
    for flag in (False, True):
        fed["tokens"] = 0
        score_items(model, tok, items, "causal", EvalOptions(compat="babylm2025", shared_prefix=flag), log=lambda m: None)
        counts[flag] = fed["tokens"]
    assert counts[True] < 0.5 * counts[False], counts


def test_prefix_units_leave_every_option_a_token():
    requests = [scoring.Request((1, 2, 3), (4, 5)), scoring.Request((1, 2, 3), (4,)), scoring.Request((1, 9), (9,))]
    units = scoring.prefix_units(requests, [[0, 1], [2]], skipped=set())
    assert units == [scoring.PrefixUnit((0, 1), 3)]  # option 1's last input token (3) predicts its 4


@pytest.mark.parametrize("family,backend", [("gpt2", "causal"), ("bert", "mlm"), ("bert", "mntp")])
def test_stock_models_score_as_the_2025_method(tmp_path, family, backend):
    """A random GPT-2 (no special tokens) and BERT (`[CLS] text [SEP]`) from a local directory:
    antlm's scores and decisions equal the 2025 method's in plain transformers."""
    directory = (gpt2_directory if family == "gpt2" else bert_directory)(tmp_path / family)
    options = EvalOptions(compat="babylm2025", backend=backend)
    model, tok = load_scored_model(directory, options)
    items = synthetic_items(8)
    ours = score_items(model, tok, items, backend, options, log=lambda m: None)[1.0]
    bench = _benchmark()
    scorer = bench.Scorer2025(directory, backend, item_batch=16, copy_batch=64)
    theirs = [row for kind in ("pair", "ewok", "entity")  # the 2025 batches hold items with equal option counts
              for row in scorer.scores([i for i in items if i.id.startswith(kind)])]
    order = [i for kind in ("pair", "ewok", "entity") for i, item in enumerate(items) if item.id.startswith(kind)]
    _assert_same([ours[i] for i in order], theirs)


@pytest.mark.parametrize("backbone,backend", [("babyllama", "causal"), ("ltgbert", "mlm"), ("gptbert", "causal")])
def test_antlm_run_and_its_export_score_alike(tmp_path, tokenizer, backbone, backend):
    run = save_random_model(tmp_path / backbone, tokenizer, backbone, **{"model.max_seq_len": 256, "data.seq_len": 256})
    exported = export_hf(run, tmp_path / f"{backbone}-hf")
    options = EvalOptions(compat="babylm2025", backend=backend)
    items = synthetic_items(6)
    model, tok = load_model(run)
    ours = score_items(model, tok, items, backend, options, log=lambda m: None)[1.0]
    hf_model, hf_tok = load_scored_model(exported, options)
    assert type(hf_model).__name__ == ("HFCausalLM" if backend == "causal" else "HFMaskedLM")
    theirs = score_items(hf_model, hf_tok, items, backend, options, log=lambda m: None)[1.0]
    _assert_same(ours, theirs)


def test_what_a_hf_model_cannot_do_is_one_line(tmp_path, capsys):
    gpt2 = gpt2_directory(tmp_path / "gpt2")
    data = tmp_path / "data" / "fast_eval" / "wug_adj_nominalization"
    data.mkdir(parents=True)
    (data / "x.jsonl").write_text("".join(f'{{"sentences": "the dog runs .\\tthe dog run .", "ratio": {r}}}\n'
                                          for r in (0.2, 0.5, 0.7)))
    cases = [(["--backend", "mlm"], "no masked-LM class"), (["--backend", "hybrid"], "one backend"),
             (["--compat", "babylm2024"], "scores antlm models only"), (["--tasks", "glue"], "zero-shot tasks")]
    for extra, message in cases:
        argv = ["eval", str(gpt2), "--data", str(tmp_path / "data"), "--eval-set", "fast", "--out", str(tmp_path / "r.json")]
        if "--compat" not in extra:
            argv += ["--compat", "babylm2025"]
        assert cli_main(argv + (["--tasks", "blimp"] if "--tasks" not in extra else []) + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
    assert cli_main(["eval", str(gpt2), "--data", str(tmp_path / "data"), "--compat", "babylm2025", "--eval-set", "fast",
                     "--tasks", "wug_adj", "--out", str(tmp_path / "r.json")]) == 0


@pytest.mark.parametrize("tasks", ["", " , ", ","])
def test_empty_task_list_is_refused_before_any_work(tmp_path, tokenizer, tasks, capsys):
    run = save_random_model(tmp_path / "m", tokenizer, "babyllama")
    assert cli_main(["eval", str(run), "--data", str(tmp_path / "nowhere"), "--tasks", tasks]) == 2
    err = capsys.readouterr().err
    assert "--tasks is empty" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["eval", str(run), "--data", str(tmp_path / "nowhere"), "--glue-tasks", ""]) == 2
    assert "--glue-tasks is empty" in capsys.readouterr().err


def test_ties_are_counted_as_the_pipeline_counts_them():
    items = [Item(f"i{k}", "", ("a", "b")) for k in range(4)]
    scores = [[1.0, 1.0], [2.0, 1.0], [0.5, 0.5], [0.0, 3.0]]
    for mode, counted_right in (("babylm2025", 2), ("clean", 0)):
        from antlm.eval import pipelines

        result = summarize("blimp", {"x": items}, scores, pipelines.get(mode))
        assert result["ties"] == 2 and result["ties_counted_correct"] == counted_right


def test_mntp_without_a_head_token_leaves_the_first_token_unscored(tokenizer):
    from antlm.eval.pipelines.base import ScoringContext, SpecialTokens

    ctx = ScoringContext(tokenizer, "hf-x", 1, SpecialTokens((), (), 0))
    request, = babylm2025.encode(Item("x", "", ("the dog runs .",)), "mntp", ctx)[:1]
    whole = tokenizer.encode("the dog runs .", add_special_tokens=False).ids
    assert request.prefix == tuple(whole[:1]) and request.target == tuple(whole[1:])
    torch.manual_seed(0)
