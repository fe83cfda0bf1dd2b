"""Tests for the embedded synthetic corpus (antlm/data/synthetic.py).

The grammaticality checker below is an independent recursive-descent recogniser written from
the grammar's rules (agreement, a/an, reflexives, correlatives, animacy); it shares only the
word lists with the generator, so a generator bug that emits an ungrammatical "good" sentence,
or a "bad" sentence that is accidentally grammatical, shows up here.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from antlm.data import synthetic as S

# ---------------------------------------------------------------------------- checker lexicon
NOUN = {}
for _animate, _nouns in ((True, S.ANIMATE_NOUNS), (False, S.INANIMATE_NOUNS)):
    for _sg, _pl in _nouns:
        NOUN[_sg], NOUN[_pl] = ("sg", _animate), ("pl", _animate)
DET_NUM = {"the": None, "a": "sg", "an": "sg", **{d: "sg" for d in S.SG_DETS}, **{d: "pl" for d in S.PL_DETS}}
ADJ = set(S.ADJECTIVES)
NAME_REFL = {**{n: "himself" for n in S.MALE_NAMES}, **{n: "herself" for n in S.FEMALE_NAMES}}
SUBJ_PRON = {w: (num, refl) for w, num, refl in S.SUBJECT_PRONOUNS}
COPULA = {"is": "sg", "are": "pl", "was": "sg", "were": "pl"}
DO_AUX = {"does": "sg", "do": "pl", "did": None}
VERB_FORMS: dict[str, list] = {}  # word -> [(entry, form)], entry = ("intr", animate) | ("trans", obj, refl)
for _entries, _kind in ((S.INTRANSITIVE, ("intr", True)), (S.INANIMATE_INTRANSITIVE, ("intr", False))):
    for _v in _entries:
        for _form, _word in zip(("base", "s3", "past"), _v):
            VERB_FORMS.setdefault(_word, []).append((_kind, _form))
for _v in S.TRANSITIVE:
    for _form, _word in zip(("base", "s3", "past"), _v[:3]):
        VERB_FORMS.setdefault(_word, []).append((("trans", _v[3], _v[4]), _form))


def _form_ok(form: str, num: str, mode: str) -> bool:
    if mode == "base":
        return form == "base"
    return form == "past" or (form == "s3" and num == "sg") or (form == "base" and num == "pl")


def _takes(entry: tuple, obj_animate: bool) -> bool:
    return entry[1] == "x" or (entry[1] == "a") == obj_animate


class Checker:
    """Each method takes a start index and yields every end index (plus features) it can parse."""

    def __init__(self, sentence: str):
        self.t = sentence.split()

    def at(self, i):
        return self.t[i] if i < len(self.t) else None

    def dp(self, i, mods=True):
        det, k = self.at(i), i + 1
        if det not in DET_NUM:
            return
        while self.at(k) in ADJ:
            k += 1
        if k - i - 1 > 2 or self.at(k) not in NOUN:
            return
        num, animate = NOUN[self.t[k]]
        if DET_NUM[det] not in (None, num):  # determiner-noun agreement
            return
        if det in ("a", "an") and det != ("an" if self.t[i + 1][0] in "aeiou" else "a"):
            return
        yield k + 1, num, animate
        if mods:
            for j in self.modifier(k + 1, num, animate):
                yield j, num, animate

    def modifier(self, i, num, animate):
        w = self.at(i)
        if w in S.NOUN_PREPS:
            for j, _, _ in self.dp(i + 1, mods=False):
                yield j
        elif w == "that" or (w == "who" and animate):
            yield from self.rc(i + 1, num, animate)

    def rc(self, i, num, animate):
        if animate:  # subject gap: the verb agrees with the head noun
            yield from self.vp(i, num, True, None, plain=True, only_trans=True)
        for j, inner_num, inner_animate, _ in self.subject(i, simple=True):  # object gap
            for entry, form in VERB_FORMS.get(self.at(j), ()):
                if inner_animate and entry[0] == "trans" and _form_ok(form, inner_num, "finite") \
                        and _takes(entry, animate):
                    yield j + 1

    def conjunct(self, i, animate):
        if animate and self.at(i) in NAME_REFL:
            yield i + 1
        for j, _, a in self.dp(i, mods=False):
            if a == animate:
                yield j

    def subject(self, i, simple=False):
        w = self.at(i)
        if w in NAME_REFL:
            yield i + 1, "sg", True, NAME_REFL[w]
            if not simple and self.at(i + 1) == "," and self.at(i + 2) == "who":
                for j in self.rc(i + 3, "sg", True):
                    if self.at(j) == ",":
                        yield j + 1, "sg", True, NAME_REFL[w]
        if w in SUBJ_PRON:
            yield i + 1, SUBJ_PRON[w][0], True, SUBJ_PRON[w][1]
        for j, num, animate in self.dp(i, mods=not simple):
            yield j, num, animate, "themselves" if animate and num == "pl" else None
        if not simple:
            for j in self.conjunct(i, True):
                if self.at(j) == "and":
                    for j2 in self.conjunct(j + 1, True):
                        yield j2, "pl", True, "themselves"

    def obj(self, i, plain):
        w = self.at(i)
        if w in NAME_REFL or w in S.OBJECT_PRONOUNS:
            yield i + 1, True
        for j, _, animate in self.dp(i, mods=not plain):
            yield j, animate
        if w in S.CORRELATIVES and not plain:  # either..or, neither..nor, both..and
            for animate in (True, False):
                for j in self.conjunct(i + 1, animate):
                    if self.at(j) == S.CORRELATIVES[w]:
                        for j2 in self.conjunct(j + 1, animate):
                            yield j2, animate

    def locative(self, i):
        if self.at(i) in S.LOC_PREPS:
            for j, _, _ in self.dp(i + 1, mods=False):
                yield j

    def vp(self, i, num, animate, refl, mode="finite", plain=False, only_trans=False):
        w = self.at(i)
        if mode == "finite" and not plain and COPULA.get(w) == num:
            if self.at(i + 1) in ADJ:
                yield i + 2
            yield from self.locative(i + 1)
        k = i + 1 if not plain and w in S.PRE_ADVERBS else i
        for entry, form in VERB_FORMS.get(self.at(k), ()):
            if not _form_ok(form, num, mode) or (only_trans and entry[0] != "trans"):
                continue
            if entry[0] == "intr" and entry[1] == animate:
                yield k + 1
                if plain:
                    continue
                k2 = k + 2 if self.at(k + 1) in S.POST_ADVERBS else k + 1
                if k2 > k + 1:
                    yield k2
                yield from self.locative(k2)
            elif entry[0] == "trans" and animate:
                if entry[2] and refl is not None and self.at(k + 1) == refl:
                    yield k + 2
                for j, obj_animate in self.obj(k + 1, plain):
                    if _takes(entry, obj_animate):
                        yield j
                        if not plain and self.at(j) in S.POST_ADVERBS:
                            yield j + 1

    def clause(self, i):
        for j, num, animate, refl in self.subject(i):
            yield from self.vp(j, num, animate, refl)

    def sentences(self):
        t, last = self.t, len(self.t) - 1
        if t[-1] == ".":
            start = 2 if t[:2] == ["yesterday", ","] else 0
            for j in self.clause(start):
                if j == last:
                    yield True
                elif self.at(j) in ("and", "but"):
                    yield any(j2 == last for j2 in self.clause(j + 1))
        elif t[-1] == "?":
            if t[0] == "who":
                yield any(j == last for j in self.vp(1, "sg", True, None))
            elif t[0] == "what" and self.at(1) in DO_AUX:
                for j, num, animate, _ in self.subject(2, simple=True):
                    yield (j + 1 == last and animate and DO_AUX[t[1]] in (None, num)
                           and any(e[0] == "trans" and e[1] in "ix" and f == "base"
                                   for e, f in VERB_FORMS.get(self.at(j), ())))
            elif t[0] in COPULA:
                for j, num, _, _ in self.subject(1):
                    if COPULA[t[0]] == num:
                        yield self.at(j) in ADJ and j + 1 == last
                        yield any(j2 == last for j2 in self.locative(j))
            elif t[0] in DO_AUX:
                for j, num, animate, refl in self.subject(1):
                    if DO_AUX[t[0]] in (None, num):
                        yield any(j2 == last for j2 in self.vp(j, num, animate, refl, mode="base"))


def grammatical(sentence: str) -> bool:
    return any(Checker(sentence).sentences())


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def corpus():
    return S.generate_sentences(4000, 3)


@pytest.fixture(scope="module")
def pairs(corpus):
    return S.generate_minimal_pairs(120, 3, exclude=corpus)


# ---------------------------------------------------------------------------- sentences
def test_sentences_deterministic_and_seeded(corpus):
    assert S.generate_sentences(4000, 3) == corpus
    assert S.generate_sentences(4000, 4) != corpus
    assert S.generate_sentences(500, 3) == corpus[:500]  # prefix-stable stream


def test_sentence_shape(corpus):
    for s in corpus:
        toks = s.split()
        assert s.endswith((" .", " ?")) and s == s.lower() and s == " ".join(toks)
        assert S.MIN_TOKENS <= len(toks) <= S.MAX_TOKENS
    mean = sum(len(s.split()) for s in corpus) / len(corpus)
    assert 8 <= mean <= 15  # ~600k-900k words for the default 60k sentences
    assert sum(s.endswith("?") for s in corpus) > 0.1 * len(corpus)


def test_vocabulary_size(corpus):
    vocab = {w for s in corpus for w in s.split()}
    assert 200 <= len(vocab) <= 400
    lexicon = set(NOUN) | ADJ | set(VERB_FORMS) | set(NAME_REFL)
    assert len(lexicon - vocab) < 20  # nearly every word type actually occurs


def test_training_sentences_are_grammatical(corpus):
    bad = [s for s in corpus[:2500] if not grammatical(s)]
    assert bad == []


def test_checker_rejects_agreement_errors():
    assert grammatical("the key near the cabinets is on the table .")
    assert not grammatical("the key near the cabinets are on the table .")
    assert grammatical("these dogs ran .") and not grammatical("this dogs ran .")
    assert not grammatical("an dog ran .") and not grammatical("a old dog ran .")
    assert not grammatical("john saw herself .") and grammatical("john saw himself .")
    assert not grammatical("mary saw neither john or tom .")


def test_generation_is_fast():
    import time
    start = time.perf_counter()
    sentences = S.generate_sentences(20000, 0)
    S.generate_minimal_pairs(200, 0, exclude=sentences)
    assert time.perf_counter() - start < 2.0


def test_independent_of_hash_seed(tmp_path):
    code = ("import hashlib, json; from antlm.data import synthetic as S; s = S.generate_sentences(300, 5);"
            "p = S.generate_minimal_pairs(20, 5, exclude=s);"
            "print(hashlib.sha256(json.dumps([s, p]).encode()).hexdigest())")
    root = str(Path(__file__).resolve().parents[1])
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": h, "PYTHONPATH": root}).stdout
               for h in ("0", "1", "12345")}
    assert len(digests) == 1


# ---------------------------------------------------------------------------- minimal pairs
def test_phenomena_and_right_context():
    assert len(S.PHENOMENA) >= 6 and len(set(S.PHENOMENA)) == len(S.PHENOMENA)
    assert len(S.RIGHT_CONTEXT_PHENOMENA) >= 3 and set(S.RIGHT_CONTEXT_PHENOMENA) <= set(S.PHENOMENA)


def test_pairs_deterministic(corpus, pairs):
    assert S.generate_minimal_pairs(120, 3, exclude=corpus) == pairs
    assert S.generate_minimal_pairs(120, 4, exclude=corpus) != pairs


def test_pair_structure(pairs):
    assert list(pairs) == list(S.PHENOMENA)
    for name, items in pairs.items():
        assert len(items) == 120
        assert len({p["sentence_good"] for p in items}) == 120
        for p in items:
            assert set(p) == {"sentence_good", "sentence_bad", "phenomenon"} and p["phenomenon"] == name
            good, bad = p["sentence_good"].split(), p["sentence_bad"].split()
            assert len(good) == len(bad)
            assert sum(g != b for g, b in zip(good, bad)) == 1


def test_good_passes_checker_and_bad_fails(pairs):
    for name, items in pairs.items():
        for p in items:
            assert grammatical(p["sentence_good"]), (name, p["sentence_good"])
            assert not grammatical(p["sentence_bad"]), (name, p["sentence_bad"])


def test_right_context_pairs_differ_before_the_decider(pairs):
    for name in S.RIGHT_CONTEXT_PHENOMENA:
        for p in pairs[name]:
            good, bad = p["sentence_good"].split(), p["sentence_bad"].split()
            i = next(k for k in range(len(good)) if good[k] != bad[k])
            # the left context is identical, so nothing before the differing word decides it
            assert good[:i] == bad[:i] and i < len(good) - 2


def test_no_leakage(corpus, pairs):
    train = set(corpus)
    for items in pairs.values():
        for p in items:
            assert p["sentence_bad"] not in train
            assert p["sentence_good"] not in train


def test_default_exclusion_uses_training_stream():
    pairs = S.generate_minimal_pairs(30, 0)
    train = set(S.generate_sentences(S.DEFAULT_NUM_SENTENCES, 0))
    assert all(p["sentence_good"] not in train for items in pairs.values() for p in items)


# ---------------------------------------------------------------------------- files
def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_write_corpus_layout(tmp_path):
    out = S.write_corpus(tmp_path / "emb", num_sentences=3000, seed=1, pairs_per_phenomenon=40)
    assert out == tmp_path / "emb"
    train = (out / "corpus" / "synthetic.train").read_text(encoding="utf-8").splitlines()
    dev = (out / "corpus" / "synthetic.dev").read_text(encoding="utf-8").splitlines()
    assert len(dev) == 3000 // S.DEV_EVERY and len(train) + len(dev) == 3000
    assert train + dev != [] and sorted(train + dev) == sorted(S.generate_sentences(3000, 1))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generator_version"] == 1 and manifest["num_sentences"] == 3000
    assert manifest["seed"] == 1 and manifest["phenomena"] == list(S.PHENOMENA)
    assert manifest["words"] == sum(len(s.split()) for s in train + dev)
    assert sorted(p.name for p in (out / "minimal_pairs").iterdir()) == sorted(f"{n}.jsonl" for n in S.PHENOMENA)
    everything = set(train + dev)
    for name in S.PHENOMENA:
        lines = (out / "minimal_pairs" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 40
        for line in lines:
            item = json.loads(line)
            assert item["phenomenon"] == name and item["sentence_good"] not in everything
            assert item["sentence_bad"] not in everything
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]  # no temporary directory left behind


def test_write_corpus_byte_identical_and_reused(tmp_path):
    a = S.write_corpus(tmp_path / "a", num_sentences=2000, seed=7, pairs_per_phenomenon=30)
    b = S.write_corpus(tmp_path / "b", num_sentences=2000, seed=7, pairs_per_phenomenon=30)
    assert _tree_digest(a) == _tree_digest(b)
    stamp = (a / "corpus" / "synthetic.train").stat().st_mtime_ns
    (a / "marker").write_text("kept")
    S.write_corpus(a, num_sentences=2000, seed=7, pairs_per_phenomenon=30)  # same manifest: no rewrite
    assert (a / "marker").exists() and (a / "corpus" / "synthetic.train").stat().st_mtime_ns == stamp
    S.write_corpus(a, num_sentences=2000, seed=8, pairs_per_phenomenon=30)  # stale: replaced
    assert not (a / "marker").exists() and json.loads((a / "manifest.json").read_text())["seed"] == 8
    assert _tree_digest(a) != _tree_digest(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_write_corpus_refuses_foreign_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        S.write_corpus(tmp_path / "mine", num_sentences=500, seed=0, pairs_per_phenomenon=5)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "user data"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
