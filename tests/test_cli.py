"""Bad input: one line on stderr, exit code 2, no traceback, existing files untouched."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, tiny_overrides


def antlm(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "antlm", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _sets(corpus, **extra):
    out = []
    for item in tiny_overrides(corpus, **extra):
        out += ["--set", item]
    return out


def assert_clean_failure(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A finished tiny run whose files must survive every refused command."""
    root = tmp_path_factory.mktemp("existing")
    from conftest import WORDS
    import random

    rng = random.Random(1)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.train").write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(600)))
    result = antlm("train", "--out", str(root / "run"), *_sets(corpus, schedule="6st_clm"))
    assert result.returncode == 0, result.stderr
    return root


CASES = {
    "missing corpus": (lambda c, t: _sets(t / "nowhere"), "corpus directory not found"),
    "empty corpus": (lambda c, t: _sets(t / "emptydir"), "no training files"),
    "unknown key": (lambda c, t: _sets(c) + ["--set", "model.layers=3"], "unknown config key 'model.layers'"),
    "wrong type": (lambda c, t: _sets(c) + ["--set", "train.batch_size=many"], "expects int"),
    "bad schedule": (lambda c, t: _sets(c, schedule="4_clm+2_gpt"), "phase '2_gpt'"),
    "vocab too small": (lambda c, t: _sets(c, **{"data.vocab_size": 100}), "too small"),
    "sequence too long": (lambda c, t: _sets(c, **{"data.seq_len": 64}), "longer than model.max_seq_len"),
    "over word budget": (lambda c, t: _sets(c, **{"data.word_budget": 100}), "over data.word_budget"),
    "negative lr": (lambda c, t: _sets(c, **{"optim.lr": -0.1}), "optim.lr"),
    "missing config file": (lambda c, t: ["--config", str(t / "none.yaml")] + _sets(c), "config file not found"),
    "bad set syntax": (lambda c, t: _sets(c) + ["--set", "schedule"], "key=value"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_train_input(existing_run, tmp_path, case):
    (tmp_path / "emptydir").mkdir()
    make_args, fragment = CASES[case]
    corpus = existing_run / "corpus"
    before = snapshot(existing_run)
    fresh = tmp_path / "fresh"
    result = antlm("train", "--out", str(fresh), *make_args(corpus, tmp_path))
    assert_clean_failure(result, fragment)
    assert not fresh.exists()  # nothing created for a run that never started
    # The same bad input aimed at an existing run with --force must not delete it.
    result = antlm("train", "--out", str(existing_run / "run"), "--force", *make_args(corpus, tmp_path))
    assert_clean_failure(result, fragment)
    assert snapshot(existing_run) == before


def test_out_dir_with_a_run_is_refused(existing_run):
    before = snapshot(existing_run)
    result = antlm("train", "--out", str(existing_run / "run"), *_sets(existing_run / "corpus", schedule="6st_clm"))
    assert_clean_failure(result, "already holds a run")
    result = antlm("train", "--out", str(existing_run / "run"), "--resume", *_sets(existing_run / "corpus", schedule="9st_clm"))
    assert_clean_failure(result, "config differs")
    assert snapshot(existing_run) == before


def test_resume_of_a_finished_run_is_a_no_op(existing_run):
    before = snapshot(existing_run)
    result = antlm("train", "--out", str(existing_run / "run"), "--resume", *_sets(existing_run / "corpus", schedule="6st_clm"))
    assert result.returncode == 0, result.stderr
    assert snapshot(existing_run) == before


def test_argparse_errors_are_one_line():
    result = antlm("train")
    assert_clean_failure(result, "--out")
    assert_clean_failure(antlm("frobnicate"), "invalid choice")


def test_prepare_reports_the_store(existing_run):
    result = antlm("prepare", *_sets(existing_run / "corpus"))
    assert result.returncode == 0, result.stderr
    assert '"train_tokens"' in result.stderr
