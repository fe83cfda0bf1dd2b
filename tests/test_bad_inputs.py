"""A table of bad inputs for `antlm prepare|train|eval|export`: each must end with exit code 2, exactly
one line on stderr, no traceback, and no file changed; and a table of odd but valid corpora that
must work.

The fixtures are built once per module (a tiny finished run, corpora, a fake evaluation_data/, a
GLUE folder, tokenizers). Each case runs in its own copy of them, so the cases are independent and
run two at a time (every subprocess spends ~2 s importing torch); the copy is snapshotted (every
file's hash and every directory) before and after the command. `.antlm.lock` files are ignored:
a refused `train` may leave an empty lock file (its content is never written).

Cases that fail because of a bug in antlm are marked xfail(strict=True) with the bug named.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import pytest
import torch

from conftest import REPO, SHARED_DATA, WORDS, tiny_overrides

WORKERS = 2
EWOK_ZIP = SHARED_DATA / "ewok" / "ewok_filtered.zip"
SLOW = os.environ.get("ANTLM_SLOW_TESTS") == "1"


# ------------------------------------------------------------------------------------------ helpers
def sets(corpus: Path, **extra) -> list[str]:
    out = []
    for item in tiny_overrides(corpus, **extra):
        out += ["--set", item]
    return out


def snapshot(root: Path) -> dict:
    """Every directory and every file's SHA-256 under `root` (lock files ignored)."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.name == ".antlm.lock":
            continue
        rel = str(path.relative_to(root))
        state[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def describe_change(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"


def antlm(args: list[str], cwd: Path, cache: Path, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ANTLM_CACHE": str(cache),
                "HF_HUB_OFFLINE": "1"}
    full_env.pop("ANTLM_EWOK_PASSWORD", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "antlm", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=600)


def write_lines(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((("\ufeff" if bom else "") + "".join(line + newline for line in lines)).encode("utf-8"))


def random_lines(seed: int, n: int, words: int = 10) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, words))) + " ." for _ in range(n)]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# ------------------------------------------------------------------------------------------ fixtures
def _official_eval_data(root: Path) -> None:
    """The BabyLM 2024 evaluation_data/ layout (as tests/test_eval.py's _write_official_layout)."""
    data = root / "evaluation_data"
    rng = random.Random(5)

    def pairs(n):
        good, bad = random_lines(rng.random(), n, 8), random_lines(rng.random(), n, 8)
        return jsonl([{"sentence_good": g, "sentence_bad": b} for g, b in zip(good, bad)])

    for i in range(67):
        (data / "blimp_filtered").mkdir(parents=True, exist_ok=True)
        (data / "blimp_filtered" / f"p{i:02d}.jsonl").write_text(pairs(3))
    (data / "supplement_filtered").mkdir()
    for i in range(5):
        (data / "supplement_filtered" / f"s{i}.jsonl").write_text(pairs(4))
    (data / "ewok_filtered").mkdir()
    for i in range(11):
        rows = [{"Context1": "the cat sees .", "Target1": a, "Target2": b}
                for a, b in zip(random_lines(i, 2, 6), random_lines(i + 50, 2, 6))]
        (data / "ewok_filtered" / f"d{i}.jsonl").write_text(jsonl(rows))


def _bpe(documents: list[str], vocab: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(documents, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs-cache")


@pytest.fixture(scope="module")
def base(tmp_path_factory, cache) -> Path:
    """Everything the cases read; each case gets its own copy."""
    from antlm.config import build_config
    from antlm.data.tokenizer import SPECIAL_TOKENS, train_tokenizer
    from antlm.train.loop import train

    root = tmp_path_factory.mktemp("bad-inputs-base")
    corpus = root / "corpus"
    write_lines(corpus / "a.train", random_lines(1, 600))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTLM_CACHE", str(cache))
        train(build_config(None, tiny_overrides(corpus, schedule="6st_clm", **{"train.checkpoint_every": 3})),
              root / "run", log=lambda message: None)
    assert (root / "run" / "final" / "model.safetensors").is_file()
    run_vocab = json.loads((root / "run" / "final" / "config.json").read_text())["model"]["vocab_size"]

    # Corpora that cannot be used.
    bad = root / "bad_corpora"
    (bad / "non_utf8").mkdir(parents=True)
    (bad / "non_utf8" / "x.train").write_bytes(b"the dog runs .\n" * 10 + b"the \xff cat\n")  # offset 154
    (bad / "binary").mkdir()
    (bad / "binary" / "x.train").write_bytes(b"the dog\x00\x01\x02 runs\n" * 4)  # first NUL at offset 7
    (bad / "empty_files").mkdir()
    (bad / "empty_files" / "a.train").write_bytes(b"")
    (bad / "empty_files" / "b.txt").write_bytes(b"")
    (bad / "empty_dir").mkdir()
    (bad / "whitespace").mkdir()
    (bad / "whitespace" / "a.train").write_text("   \n\t\n\n  \n")
    (bad / "only_dev_and_test").mkdir()
    write_lines(bad / "only_dev_and_test" / "a.dev", random_lines(2, 50))
    write_lines(bad / "only_dev_and_test" / "a.test", random_lines(3, 50))
    (bad / "corpus_file.train").write_text("the dog runs .\n")
    write_lines(bad / "bad_dev" / "a.train", random_lines(1, 600))
    (bad / "bad_dev" / "c.dev").write_bytes(b"the cat sees .\n" * 3 + b"a \xc3\x28 b\n")  # offset 47

    # Config files.
    configs = root / "configs"
    configs.mkdir()
    (configs / "list.yaml").write_text("- schedule\n- 4_clm\n")
    (configs / "broken.yaml").write_text("model: {hidden_size: 32\ndata: [\n")
    (configs / "section.yaml").write_text("model: 3\n")

    # Tokenizers that do not fit.
    tokenizers = root / "tokenizers"
    tokenizers.mkdir()
    documents = random_lines(7, 400)
    _bpe(documents, 290, []).save(str(tokenizers / "no_specials.json"))
    late = _bpe(documents, 290, [])
    late.add_special_tokens(list(SPECIAL_TOKENS))  # present, but at the end of the vocabulary
    late.save(str(tokenizers / "late_specials.json"))
    assert late.token_to_id("<pad>") != 0
    (tokenizers / "not_a_tokenizer.json").write_text(json.dumps({"vocab": {"a": 1}, "hello": "world"}))
    other = train_tokenizer(random_lines(9, 300, 5), 270)
    assert other.get_vocab_size() != run_vocab
    other.save(str(tokenizers / "other_vocab.json"))

    # Models that do not load.
    shutil.copytree(root / "run" / "final", root / "mismatched_model")
    shutil.copyfile(tokenizers / "other_vocab.json", root / "mismatched_model" / "tokenizer.json")
    shutil.copytree(root / "run" / "final", root / "damaged_model")
    with open(root / "damaged_model" / "model.safetensors", "r+b") as handle:
        handle.truncate(100)
    shutil.copytree(root / "run" / "final", root / "garbled_model")
    (root / "garbled_model" / "config.json").write_text("{not json")

    # Evaluation data.
    _official_eval_data(root / "evaldata")
    shutil.copytree(root / "evaldata", root / "evaldata_badline")
    blimp_file = root / "evaldata_badline" / "evaluation_data" / "blimp_filtered" / "p05.jsonl"
    blimp_file.write_text(blimp_file.read_text() + "{not json\n")  # line 4
    (root / "neither" / "something_else").mkdir(parents=True)
    glue = root / "glue_badlabel" / "glue_filtered"
    glue.mkdir(parents=True)
    rows = [{"sentence1": "the dog runs .", "sentence2": "a cat sees .", "label": i % 2} for i in range(6)]
    (glue / "rte.train.jsonl").write_text(jsonl(rows))
    (glue / "rte.valid.jsonl").write_text(jsonl(rows[:2] + [{**rows[0], "label": 7}] + rows[2:]))
    if shutil.which("zip"):
        # A password-protected EWoK ZIP whose password is not the default one.
        folder = root / "ewok_plain" / "ewok_filtered"
        folder.mkdir(parents=True)
        for i in range(11):
            (folder / f"d{i}.jsonl").write_text(jsonl([{"Context1": "c", "Target1": "a b", "Target2": "b a"}]))
        (root / "ewok_locked" / "ewok").mkdir(parents=True)
        (root / "ewok_locked" / "blimp_supplement").mkdir()
        subprocess.run(["zip", "-q", "-r", "-P", "not-the-default", str(root / "ewok_locked" / "ewok" / "ewok_filtered.zip"),
                        "ewok_filtered"], cwd=root / "ewok_plain", check=True)
        shutil.rmtree(root / "ewok_plain")

    # Outputs that already exist and must survive.
    (root / "results").mkdir()
    (root / "results" / "results.json").write_text(json.dumps({"earlier": "results"}))
    with gzip.open(root / "results" / "sub.json.gz", "wt") as handle:
        json.dump({"earlier": "submission"}, handle)
    (root / "export_existing").mkdir()
    (root / "export_existing" / "keep.txt").write_text("an earlier export\n")
    (root / "empty_out").mkdir()
    (root / "a_file").write_text("not a directory\n")
    (root / "fresh").mkdir()  # where commands that must not write anything are pointed
    return root


# ------------------------------------------------------------------------------------------ cases
@dataclass
class Ctx:
    root: Path  # this case's copy of `base`
    base: Path  # the original (the run's config.yaml names base/corpus)


Text = Union[str, Callable[[Ctx], str]]


@dataclass
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    fragment: Text = ""
    env: dict = field(default_factory=dict)
    lock: Optional[str] = None  # a directory (relative to the copy) to hold the run lock on meanwhile
    skip: Optional[str] = None
    bug: Optional[str] = None
    also: tuple = ()  # more fragments the message must contain


def text(value: Text, ctx: Ctx) -> str:
    return value(ctx) if callable(value) else value


def run_sets(ctx: Ctx, **extra) -> list[str]:
    """The existing run's own settings (its config names the base corpus)."""
    return sets(ctx.base / "corpus", **{"schedule": "6st_clm", "train.checkpoint_every": 3, **extra})


def corpus_sets(corpus: Path, **extra) -> list[str]:
    return sets(corpus, **extra)


def evaluate(model: str, data: str, *more: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        return ["eval", str(ctx.root / model), "--data", str(ctx.root / data) if data else str(SHARED_DATA),
                "--out", str(ctx.root / "results" / "results.json"), "--submission",
                str(ctx.root / "results" / "sub.json.gz"), *more]
    return build


NO_CUDA = "the machine has CUDA" if torch.cuda.is_available() else None
BAD = "bad_corpora"

CASES = [
    # prepare: the corpus
    Case("prepare-missing-corpus", lambda c: ["prepare", *corpus_sets(c.root / "nowhere")], "corpus directory not found"),
    Case("prepare-non-utf8", lambda c: ["prepare", *corpus_sets(c.root / BAD / "non_utf8")],
         lambda c: f"{c.root / BAD / 'non_utf8' / 'x.train'}: invalid UTF-8 at byte offset 154"),
    Case("prepare-binary-nul", lambda c: ["prepare", *corpus_sets(c.root / BAD / "binary")],
         lambda c: f"{c.root / BAD / 'binary' / 'x.train'} looks binary (NUL byte at offset 7)"),
    Case("prepare-empty-files", lambda c: ["prepare", *corpus_sets(c.root / BAD / "empty_files")], "are all empty"),
    Case("prepare-empty-dir", lambda c: ["prepare", *corpus_sets(c.root / BAD / "empty_dir")], "no training files"),
    Case("prepare-corpus-is-a-file", lambda c: ["prepare", *corpus_sets(c.root / BAD / "corpus_file.train")],
         "corpus must be a directory"),
    Case("prepare-whitespace-only", lambda c: ["prepare", *corpus_sets(c.root / BAD / "whitespace")], "hold no words"),
    Case("prepare-only-dev-and-test", lambda c: ["prepare", *corpus_sets(c.root / BAD / "only_dev_and_test")],
         "no training files"),
    Case("prepare-not-a-tokenizer", lambda c: ["prepare", *corpus_sets(c.root / "corpus", **{
        "data.tokenizer": c.root / "tokenizers" / "not_a_tokenizer.json"})], "is not a valid tokenizer.json"),
    Case("prepare-tokenizer-specials-not-ids-0-4", lambda c: ["prepare", *corpus_sets(c.root / "corpus", **{
        "data.tokenizer": c.root / "tokenizers" / "late_specials.json"})], "special tokens"),
    # train --force over an existing run: a bad corpus or tokenizer must not delete the run
    Case("train-force-non-utf8-corpus", lambda c: ["train", "--force", "--out", str(c.root / "run"),
                                                   *corpus_sets(c.root / BAD / "non_utf8")], "invalid UTF-8 at byte offset 154"),
    Case("train-force-non-utf8-dev-file", lambda c: ["train", "--force", "--out", str(c.root / "run"), *corpus_sets(
        c.root / BAD / "bad_dev", **{"data.tokenizer": c.root / "run" / "tokenizer.json"})],
         lambda c: f"{c.root / BAD / 'bad_dev' / 'c.dev'}: invalid UTF-8 at byte offset 47"),
    Case("train-force-over-word-budget", lambda c: ["train", "--force", "--out", str(c.root / "run"),
                                                    *run_sets(c, **{"data.word_budget": 1000})], "over data.word_budget=1,000"),
    Case("train-force-missing-tokenizer", lambda c: ["train", "--force", "--out", str(c.root / "run"), *run_sets(
        c, **{"data.tokenizer": c.root / "tokenizers" / "missing.json"})], "tokenizer file not found"),
    Case("train-force-tokenizer-without-specials", lambda c: ["train", "--force", "--out", str(c.root / "run"), *run_sets(
        c, **{"data.tokenizer": c.root / "tokenizers" / "no_specials.json"})],
         "lacks the special tokens <pad>, <s>, </s>, <mask>, <unk>"),
    # train: the config (these fail before torch is imported)
    Case("config-unknown-key", lambda c: ["train", "--out", str(c.root / "fresh" / "r"), *run_sets(c),
                                          "--set", "optim.learning_rate=0.1"], "unknown config key 'optim.learning_rate'"),
    Case("config-lr-not-a-number", lambda c: ["train", "--out", str(c.root / "fresh" / "r"), *run_sets(c, **{"optim.lr": "fast"})],
         "config key 'optim.lr' expects float, got 'fast'"),
    Case("config-negative-lr", lambda c: ["train", "--force", "--out", str(c.root / "run"), *run_sets(c, **{"optim.lr": -0.001})],
         "optim.lr must be in (0, 1)"),
    Case("config-zero-epoch-phase", lambda c: ["train", "--out", str(c.root / "fresh" / "r"), *run_sets(c, schedule="0_clm")],
         "phase '0_clm' has zero length"),
    Case("config-bad-schedule-syntax", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                                  *run_sets(c, schedule="4clm+2_mlm")], "bad schedule phase '4clm'"),
    Case("config-bad-mix-weight", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                             *run_sets(c, schedule="2_mix(clm=1,mlm=x)")], "must be a positive integer"),
    Case("config-float-for-int", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                            *run_sets(c, **{"train.batch_size": 2.5})], "'train.batch_size' expects int"),
    Case("config-missing-file", lambda c: ["train", "--config", str(c.root / "configs" / "nope.yaml"), "--out",
                                           str(c.root / "fresh" / "r")], "config file not found"),
    Case("config-yaml-not-a-mapping", lambda c: ["train", "--config", str(c.root / "configs" / "list.yaml"), "--out",
                                                 str(c.root / "fresh" / "r")], "must hold a mapping of keys, got list"),
    Case("config-yaml-syntax-error", lambda c: ["train", "--config", str(c.root / "configs" / "broken.yaml"), "--out",
                                                str(c.root / "fresh" / "r")], "is not valid YAML"),
    Case("config-section-not-a-mapping", lambda c: ["train", "--config", str(c.root / "configs" / "section.yaml"), "--out",
                                                    str(c.root / "fresh" / "r")], "config section 'model' must be a mapping"),
    Case("config-vocab-too-small", lambda c: ["train", "--force", "--out", str(c.root / "run"),
                                              *run_sets(c, **{"data.vocab_size": 200})], "data.vocab_size=200 is too small"),
    Case("config-seq-len-over-max", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                               *run_sets(c, **{"data.seq_len": 64})], "longer than model.max_seq_len (32)"),
    Case("config-micro-batch-not-dividing", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                                       *run_sets(c, **{"train.micro_batch_size": 3})],
         "train.micro_batch_size (3) must divide train.batch_size (8)"),
    Case("config-seq-len-1-with-mlm", lambda c: ["train", "--force", "--out", str(c.root / "run"),
                                                 *run_sets(c, **{"data.seq_len": 1, "schedule": "2st_mlm"})], "data.seq_len"),
    Case("config-unknown-backbone", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                               *run_sets(c, **{"model.backbone": "gpt2"})], "model.backbone must be one of"),
    Case("config-set-without-equals", lambda c: ["train", "--out", str(c.root / "fresh" / "r"), *run_sets(c),
                                                 "--set", "schedule"], "--set expects key=value"),
    Case("config-unknown-track", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                            *run_sets(c, **{"data.track": "strict-small-2023"})],
         "unknown data.track 'strict-small-2023'"),
    Case("config-bad-milestone-list", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                                 *run_sets(c, **{"train.word_checkpoints": "1M,5Q"})],
         "train.word_checkpoints: bad milestone '5Q'"),
    Case("train-force-over-track-words-seen", lambda c: ["train", "--force", "--out", str(c.root / "run"), *run_sets(
        c, **{"data.track": "strict-small-2025", "schedule": "2000000st_clm"})],
         "over track strict-small-2025's limit of 100,000,000 words seen"),
    Case("config-zero-max-steps", lambda c: ["train", "--out", str(c.root / "fresh" / "r"),
                                             *run_sets(c, **{"train.max_steps": 0})], "train.max_steps must be positive"),
    # train: the out dir
    Case("out-holds-another-run", lambda c: ["train", "--out", str(c.root / "run"), *run_sets(c)], "already holds a run"),
    Case("out-resume-empty-dir", lambda c: ["train", "--resume", "--out", str(c.root / "empty_out"), *run_sets(c)],
         "holds no run (no config.yaml)"),
    Case("out-resume-changed-config", lambda c: ["train", "--resume", "--out", str(c.root / "run"),
                                                 *run_sets(c, **{"optim.lr": 0.001})], "config differs from", also=("optim.lr",)),
    Case("out-resume-and-force", lambda c: ["train", "--resume", "--force", "--out", str(c.root / "run"), *run_sets(c)],
         "--resume and --force exclude each other"),
    Case("out-is-a-file", lambda c: ["train", "--out", str(c.root / "a_file"), *run_sets(c)], "exists and is not a directory"),
    Case("out-resume-locked-run", lambda c: ["train", "--resume", "--out", str(c.root / "run"), *run_sets(c)],
         "in use by another antlm process", lock="run"),
    # eval
    Case("eval-missing-model", evaluate("nowhere", "evaldata", "--tasks", "blimp"), "is neither an antlm run directory"),
    Case("eval-missing-data-dir", evaluate("run", "no_data", "--tasks", "blimp"), "evaluation data directory not found"),
    Case("eval-unknown-task", evaluate("run", "evaldata", "--tasks", "blimp,blimpp"), "unknown task 'blimpp'"),
    Case("eval-data-neither-layout", evaluate("run", "neither", "--tasks", "blimp"),
         "is none of: a BabyLM 2024 evaluation_data/ folder"),
    Case("eval-malformed-blimp-line", evaluate("run", "evaldata_badline", "--tasks", "blimp"),
         lambda c: f"{c.root / 'evaldata_badline' / 'evaluation_data' / 'blimp_filtered' / 'p05.jsonl'}:4: malformed JSON line"),
    Case("eval-ewok-wrong-password", evaluate("run", "", "--tasks", "ewok", "--limit", "1"),
         "wrong or missing EWoK password", env={"ANTLM_EWOK_PASSWORD": "wrong"},
         skip=None if EWOK_ZIP.is_file() else f"no EWoK ZIP at {EWOK_ZIP}"),
    Case("eval-ewok-zip-password-not-given", evaluate("run", "ewok_locked", "--tasks", "ewok", "--limit", "1"),
         "wrong or missing EWoK password (set ANTLM_EWOK_PASSWORD)",
         skip=None if shutil.which("zip") else "no zip command to make a password-protected ZIP"),
    Case("eval-glue-unknown-label", evaluate("run", "glue_badlabel", "--tasks", "glue", "--glue-tasks", "rte"),
         lambda c: f"{c.root / 'glue_badlabel' / 'glue_filtered' / 'rte.valid.jsonl'}:3: label 7 is not one of [0, 1]"),
    Case("eval-limit-zero", evaluate("run", "evaldata", "--tasks", "blimp", "--limit", "0"), "--limit must be positive"),
    Case("eval-tokenizer-mismatch", evaluate("mismatched_model", "evaldata", "--tasks", "blimp"),
         "tokens but the model expects"),
    Case("eval-garbled-model-config", evaluate("garbled_model", "evaldata", "--tasks", "blimp"), "is not an antlm model config"),
    Case("eval-damaged-weights", evaluate("damaged_model", "evaldata", "--tasks", "blimp"), "model.safetensors"),
    Case("eval-device-without-cuda", evaluate("run", "evaldata", "--tasks", "blimp", "--limit", "1", "--device", "cuda"),
         "cuda", skip=NO_CUDA),
    Case("eval-device-unknown", evaluate("run", "evaldata", "--tasks", "blimp", "--limit", "1", "--device", "gpu0"),
         "gpu0"),
    Case("eval-out-is-a-directory", lambda c: ["eval", str(c.root / "run"), "--data", str(c.root / "evaldata"), "--tasks",
                                               "blimp", "--limit", "1", "--out", str(c.root / "results")], "results"),
    Case("eval-submission-unwritable", lambda c: ["eval", str(c.root / "run"), "--data", str(c.root / "evaldata"), "--tasks",
                                                  "blimp", "--limit", "1", "--out", str(c.root / "results" / "results.json"),
                                                  "--submission", str(c.root / "a_file" / "sub.json.gz")], "sub.json.gz"),
    # export
    Case("export-missing-model", lambda c: ["export", str(c.root / "nowhere"), str(c.root / "fresh" / "hf")],
         "is neither an antlm run directory"),
    Case("export-out-not-empty", lambda c: ["export", str(c.root / "run"), str(c.root / "export_existing")],
         "already exists and is not empty (use --force to replace it)"),
    Case("export-into-the-run-itself", lambda c: ["export", str(c.root / "run" / "final"), str(c.root / "run"), "--force"],
         "must not contain the model"),
    Case("export-series-of-a-run-without-one", lambda c: ["export", str(c.root / "run"), str(c.root / "fresh" / "hf"),
                                                          "--series"], "has no word-checkpoint series"),
    Case("export-damaged-weights", lambda c: ["export", str(c.root / "damaged_model"), str(c.root / "fresh" / "hf")],
         "model.safetensors"),
]


# ------------------------------------------------------------------------- odd but valid corpora
def _plain(seed: int = 11) -> list[str]:
    return random_lines(seed, 400)


@functools.lru_cache(maxsize=None)
def long_line(chars: int) -> str:
    """One line of `chars` characters of words, no newline in it."""
    rng = random.Random(4)
    return " ".join(rng.choice(WORDS) for _ in range(chars // 4))[:chars]


UNICODE_LINES = ["the café sees a naïve dog .", "children run near the 木 and the 🌳 .", "Ünïcödé wörds ârē fïnē ."] * 60


@dataclass
class Valid:
    id: str
    build: Callable[[Path], None]  # writes the corpus into the given directory
    lines: Callable[[], list[str]]  # the training documents it holds, decoded
    skip: Optional[str] = None
    exact_tokens: bool = True


VALID = [
    Valid("crlf-line-ends", lambda d: write_lines(d / "a.train", _plain(), "\r\n"), _plain),
    Valid("utf8-bom", lambda d: write_lines(d / "a.train", _plain(), bom=True), _plain),
    Valid("bom-and-crlf-in-train-and-dev", lambda d: (write_lines(d / "a.train", _plain(), "\r\n", bom=True),
                                                       write_lines(d / "b.dev", _plain(12), "\r\n", bom=True)), _plain),
    Valid("non-ascii-utf8", lambda d: write_lines(d / "a.train", UNICODE_LINES), lambda: UNICODE_LINES),
    Valid("undecodable-test-file-is-never-read", lambda d: (write_lines(d / "a.train", _plain()),
                                                             (d / "x.test").write_bytes(b"\xff\xfe\x00 binary")), _plain),
    Valid("nested-babylm-tree", lambda d: (write_lines(d / "train_10M" / "a.train", _plain()),
                                           write_lines(d / "dev" / "a.dev", _plain(12))), _plain),
    Valid("1mb-single-line", lambda d: write_lines(d / "a.train", [long_line(1_000_000)]),
          lambda: [long_line(1_000_000)], exact_tokens=False),
    Valid("10mb-single-line", lambda d: write_lines(d / "a.train", [long_line(10_000_000)]),
          lambda: [long_line(10_000_000)], exact_tokens=False,
          skip=None if SLOW else "slow (10-30 s of tokenizing on 2 cores): set ANTLM_SLOW_TESTS=1"),
]


# ------------------------------------------------------------------------------------- the runner
def _selected(request, name: str) -> list[str]:
    """The case ids of this module's `name` test that this session will run (so -k runs only those)."""
    ids = []
    for item in request.session.items:
        if item.module is sys.modules[__name__] and item.originalname == name and hasattr(item, "callspec"):
            if not any(mark.name == "skip" for mark in item.iter_markers()):
                ids.append(item.callspec.params["case"].id)
    return ids


def _run_bad(case: Case, base: Path, cases_root: Path, cache: Path) -> dict:
    root = cases_root / case.id
    shutil.copytree(base, root, symlinks=True)
    ctx = Ctx(root, base)
    args = case.args(ctx)
    before = snapshot(root)
    shared_before = hashlib.sha256(EWOK_ZIP.read_bytes()).hexdigest() if EWOK_ZIP.is_file() else None
    handle = None
    if case.lock:
        from antlm.train.setup import lock_out_dir

        handle = lock_out_dir(root / case.lock)
    try:
        result = antlm(args, cwd=root, cache=cache, env=case.env)
    finally:
        if handle is not None:
            handle.close()
    shared_after = hashlib.sha256(EWOK_ZIP.read_bytes()).hexdigest() if EWOK_ZIP.is_file() else None
    return {"result": result, "before": before, "after": snapshot(root), "ctx": ctx, "args": args,
            "shared_same": shared_before == shared_after}


def _run_valid(case: Valid, cases_root: Path, cache: Path) -> dict:
    root = cases_root / case.id
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    case.build(corpus)
    before = snapshot(corpus)
    result = antlm(["prepare", *sets(corpus)], cwd=root, cache=cache)
    return {"result": result, "before": before, "after": snapshot(corpus)}


def _run_all(jobs: dict) -> dict:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.fixture(scope="module")
def bad_outcomes(request, base, cache, tmp_path_factory) -> dict:
    cases_root = tmp_path_factory.mktemp("bad-cases")
    wanted = set(_selected(request, "test_bad_input"))
    return _run_all({c.id: (lambda c=c: _run_bad(c, base, cases_root, cache)) for c in CASES if c.id in wanted})


@pytest.fixture(scope="module")
def valid_outcomes(request, cache, tmp_path_factory) -> dict:
    cases_root = tmp_path_factory.mktemp("valid-cases")
    wanted = set(_selected(request, "test_odd_but_valid_corpus"))
    return _run_all({c.id: (lambda c=c: _run_valid(c, cases_root, cache)) for c in VALID if c.id in wanted})


def _param(case) -> pytest.param:
    marks = []
    if case.skip:
        marks.append(pytest.mark.skip(reason=case.skip))
    if getattr(case, "bug", None):
        marks.append(pytest.mark.xfail(strict=True, reason=f"bug: {case.bug}"))
    return pytest.param(case, id=case.id, marks=marks)


def assert_clean_failure(result: subprocess.CompletedProcess, fragments: list[str]) -> None:
    assert result.returncode == 2, f"exit code {result.returncode}; stderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{result.stderr[-3000:]}"
    assert lines[0].startswith("antlm: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


# --------------------------------------------------------------------------------------- the tests
def test_the_table_is_large_enough():
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    commands = {c.args(Ctx(Path("/r"), Path("/b")))[0] for c in CASES}
    assert commands == {"prepare", "train", "eval", "export"}


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case, bad_outcomes):
    outcome = bad_outcomes[case.id]
    ctx = outcome["ctx"]
    assert_clean_failure(outcome["result"], [text(case.fragment, ctx), *(text(f, ctx) for f in case.also)])
    assert outcome["after"] == outcome["before"], describe_change(outcome["before"], outcome["after"])
    assert outcome["shared_same"]


@pytest.mark.parametrize("case", [_param(c) for c in VALID])
def test_odd_but_valid_corpus(case, valid_outcomes):
    from antlm.data.tokenizer import train_tokenizer

    outcome = valid_outcomes[case.id]
    result = outcome["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stderr[result.stderr.index("\n{") + 1:])
    documents = [line.strip() for line in case.lines() if line.strip()]
    assert summary["words"] == sum(len(d.split()) for d in documents)
    if case.exact_tokens:
        # The store holds exactly the tokens of the decoded documents: no BOM, no "\r", nothing dropped.
        tokenizer = train_tokenizer(documents, 300)
        expected = sum(len(tokenizer.encode(d, add_special_tokens=False).ids) + 1 for d in documents)
        assert summary["train_tokens"] == expected
        assert summary["vocab_size"] == tokenizer.get_vocab_size()
    assert outcome["after"] == outcome["before"]  # prepare reads the corpus, never writes it
