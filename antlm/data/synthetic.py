"""The embedded default corpus: a seeded probabilistic grammar of English-like sentences, plus
minimal pairs generated from the same grammar.

It is demo data: small enough (~260 lowercase word types, "." "," "?" as separate tokens; 60k
sentences are ~600k words) for a 1-3M-parameter transformer to learn on a CPU, yet full of
agreement that spans several words, so a minimal-pair score has something to measure.

Grammar (each nonterminal is one method of `_Grammar`, choices are weighted coin flips)::

    S        -> ["yesterday" ","] CLAUSE [("and"|"but") CLAUSE] "."  |  QUESTION "?"
    CLAUSE   -> SUBJ VP
    SUBJ     -> NAME ["," "who" RC ","] | PRONOUN | CONJUNCT "and" CONJUNCT | DP
    DP       -> DET ADJ{0,2} NOUN [PP | ("that"|"who") RC]     PP -> PREP DP
    RC       -> VP_transitive (subject gap) | SUBJ V_transitive (object gap)
    VP       -> COPULA (ADJ | LOC_PREP DP) | [ADV] V_intr [ADV] [LOC_PREP DP]
              | [ADV] V_trans OBJ [ADV] | [ADV] V_trans REFLEXIVE
    OBJ      -> NAME | PRONOUN | DP | ("either" X "or" | "neither" X "nor" | "both" X "and") Y
    QUESTION -> COPULA SUBJ PRED | ("does"|"do"|"did") SUBJ VP_base | "who" VP
              | "what" ("does"|"do"|"did") SUBJ V_trans_base

Rules: present verbs, is/are, was/were, does/do agree in number with the subject ("X and Y",
they/we/you are plural); this/that/every/a(n) take singular nouns, these/those/many/several/some
plural ones; "an" goes before vowel-initial words (no "hour"/"unicorn" in the vocabulary); a
reflexive object agrees with its clause's subject (names have a fixed gender; singular common
nouns are gender-neutral, so never bind one); only animate nouns are subjects of action verbs.

Phenomena (each a list of minimal pairs; good and bad differ in exactly one word):

* subject_verb_agreement_attractor: "the key near the cabinets is / *are on the table" (a PP or
  relative clause between subject and verb holds a noun of the other number).
* determiner_noun_agreement: "these / *this dogs ran" -- the determiner differs.
* determiner_noun_agreement_adjective: "these old red / *this old red dogs ran".
* anaphor_agreement: "the teachers near the doctor praised themselves / *himself", "mary , who
  john likes , saw herself / *himself" (the antecedent may be far to the left).
* a_an_alternation: "john saw an / *a old dog".
* correlative_conjunction: "mary saw either / *neither the dog or the cats" (fixed by the later
  conjunction).
* question_aux_agreement: "is / *are the key near the cabinets on the table ?".

Right context: in all but the first and the anaphor phenomenon the differing word comes BEFORE
the word that decides it (the noun, the next word, the later conjunction, the subject). A causal
LM predicts the differing word without having seen its evidence, and can only penalise the bad
sentence later, when the decider's probability depends on having remembered the earlier word;
a masked (bidirectional) objective trains exactly the "fill this slot from both sides" skill,
so these are where the AntLM CLM+MLM alternation is expected to help (RIGHT_CONTEXT_PHENOMENA).

(An add-one bigram model of the corpus scores ~50% on the adjective, correlative and question
pairs, ~30% on attractors, ~70-75% on anaphors, but 100% on adjacent det-noun and a/an pairs.)

Determinism: only `random.Random` instances seeded from strings (SHA-512, so PYTHONHASHSEED does
not matter); nothing iterates over a set; the training stream is prefix-stable (sentence i does
not depend on `num_sentences`). Minimal pairs use other streams (one per phenomenon), and pairs
whose good sentence occurs verbatim in the same seed's corpus are dropped, so test sentences
are unseen in training; bad sentences are ungrammatical by construction, so never in it either.
"""
from __future__ import annotations

import functools
import json
import os
import random
import shutil
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

from antlm.atomic import WRITE_ERRORS, WriteError, reason_of

GENERATOR_VERSION = 1
DEFAULT_NUM_SENTENCES = 60000
DEV_EVERY = 50  # sentence i goes to dev when i % 50 == 49: 2%, and prefix-stable like the stream
MIN_TOKENS, MAX_TOKENS = 5, 25  # sentence length in tokens, final punctuation included

# ---------------------------------------------------------------------------- lexicon
# Nouns as (singular, plural). Animate ones act (subjects of verbs, antecedents of "themselves");
# the vowel-initial ones exist so that a/an is decided by the noun or adjective that follows.
ANIMATE_NOUNS = (
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("owl", "owls"), ("eagle", "eagles"),
    ("elephant", "elephants"), ("ant", "ants"), ("teacher", "teachers"), ("student", "students"),
    ("doctor", "doctors"), ("farmer", "farmers"), ("child", "children"), ("artist", "artists"),
    ("engineer", "engineers"), ("officer", "officers"), ("actor", "actors"), ("pilot", "pilots"),
    ("baker", "bakers"), ("neighbor", "neighbors"), ("insect", "insects"),
)
INANIMATE_NOUNS = (
    ("key", "keys"), ("cabinet", "cabinets"), ("table", "tables"), ("box", "boxes"),
    ("book", "books"), ("apple", "apples"), ("egg", "eggs"), ("umbrella", "umbrellas"),
    ("window", "windows"), ("garden", "gardens"), ("house", "houses"), ("car", "cars"),
    ("letter", "letters"), ("picture", "pictures"), ("envelope", "envelopes"), ("oven", "ovens"),
    ("engine", "engines"), ("album", "albums"), ("chair", "chairs"), ("bottle", "bottles"),
)
ADJECTIVES = (  # 9 of 25 vowel-initial
    "big", "small", "red", "green", "happy", "tall", "young", "clever", "famous", "strange",
    "yellow", "heavy", "tiny", "lazy", "busy", "quiet", "old", "angry", "empty", "ugly",
    "elegant", "expensive", "ancient", "odd", "icy",
)
MALE_NAMES = ("john", "david", "peter", "tom", "james", "mark")
FEMALE_NAMES = ("mary", "susan", "anna", "emma", "lisa", "sarah")
NAMES_BY_GENDER = {"m": (MALE_NAMES, "himself"), "f": (FEMALE_NAMES, "herself")}
# (word, number it agrees as, reflexive it binds or None): "we"/"you" bind no reflexive here.
SUBJECT_PRONOUNS = (("he", "sg", "himself"), ("she", "sg", "herself"),
                    ("they", "pl", "themselves"), ("we", "pl", None), ("you", "pl", None))
OBJECT_PRONOUNS = ("him", "her", "them", "us", "me")
REFLEXIVES = ("himself", "herself", "themselves")

# Verbs as (base, third singular present, past). No verb has past == base (like "hurt"), so a
# flipped present form is never accidentally a grammatical past tense.
INTRANSITIVE = (  # animate subjects
    ("sleep", "sleeps", "slept"), ("run", "runs", "ran"), ("laugh", "laughs", "laughed"),
    ("smile", "smiles", "smiled"), ("wait", "waits", "waited"), ("sing", "sings", "sang"),
    ("swim", "swims", "swam"), ("jump", "jumps", "jumped"), ("dance", "dances", "danced"),
)
INANIMATE_INTRANSITIVE = (("fall", "falls", "fell"), ("break", "breaks", "broke"), ("move", "moves", "moved"))
# Transitive verbs add what their object may be ("a"nimate, "i"nanimate or "x" either) and
# whether the object may be a reflexive. Subjects are always animate.
TRANSITIVE = (
    ("see", "sees", "saw", "x", True), ("like", "likes", "liked", "x", True),
    ("watch", "watches", "watched", "x", True), ("find", "finds", "found", "x", False),
    ("help", "helps", "helped", "a", True), ("follow", "follows", "followed", "a", False),
    ("visit", "visits", "visited", "a", False), ("praise", "praises", "praised", "a", True),
    ("admire", "admires", "admired", "a", True), ("blame", "blames", "blamed", "a", True),
    ("describe", "describes", "described", "x", True), ("carry", "carries", "carried", "i", False),
    ("open", "opens", "opened", "i", False), ("push", "pushes", "pushed", "x", False),
    ("clean", "cleans", "cleaned", "i", False), ("want", "wants", "wanted", "i", False),
)
VERBS_TAKING_ANIMATE = tuple(v for v in TRANSITIVE if v[3] in "ax")
VERBS_TAKING_INANIMATE = tuple(v for v in TRANSITIVE if v[3] in "ix")
REFLEXIVE_VERBS = tuple(v for v in TRANSITIVE if v[4])

SG_DETS = ("this", "that", "every")  # plus "a"/"an", chosen by the next word
PL_DETS = ("these", "those", "many", "several", "some")
DET_SWAP = {"this": "these", "these": "this", "that": "those", "those": "that",
            "every": "many", "many": "every"}  # the determiner pairs the agreement tests flip
NOUN_PREPS = ("near", "behind", "beside", "with", "under")
LOC_PREPS = ("on", "under", "near", "behind", "in", "beside")
PRE_ADVERBS = ("often", "always", "rarely", "sometimes")
POST_ADVERBS = ("quickly", "slowly", "quietly", "loudly", "carefully")
CORRELATIVES = {"either": "or", "neither": "nor", "both": "and"}
OTHER_NUMBER = {"sg": "pl", "pl": "sg"}
# The agreeing word's other-number form: verbs (3sg <-> base), copulas and do-support.
AGREE_SWAP = {"is": "are", "are": "is", "was": "were", "were": "was", "does": "do", "do": "does",
              **{v[i]: v[1 - i] for v in INTRANSITIVE + INANIMATE_INTRANSITIVE + TRANSITIVE for i in (0, 1)}}


def article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


class _NP(NamedTuple):
    toks: list
    num: str  # "sg" | "pl": what a verb agrees with
    animate: bool
    refl: Optional[str]  # the reflexive this phrase can bind, if any


class _Grammar:
    """One sampling method per nonterminal; `self.r` is the only source of randomness."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def tense(self) -> str:
        return "present" if self.chance(0.55) else "past"

    # ------------------------------------------------------------------ noun phrases
    def dp(self, num=None, animate=None, det=None, n_adj=None, mod_p=0.0, attractor=False) -> _NP:
        """DET ADJ* NOUN [modifier]; with `attractor` the modifier holds a noun of the other number."""
        num = num or self.pick(("sg", "pl"))
        animate = self.chance(0.6) if animate is None else animate
        if det is None:  # "a" twice so that a/an is common enough to learn
            det = "the" if self.chance(0.5) else self.pick(SG_DETS + ("a", "a") if num == "sg" else PL_DETS)
        if n_adj is None:
            n_adj = self.pick((0, 0, 0, 1, 1, 2))
        adjs: list = []
        while len(adjs) < n_adj:
            adj = self.pick(ADJECTIVES)
            if adj not in adjs:
                adjs.append(adj)
        sg, pl = self.pick(ANIMATE_NOUNS if animate else INANIMATE_NOUNS)
        toks = [det, *adjs, sg if num == "sg" else pl]
        if det in ("a", "an"):
            toks[0] = article(toks[1])
        head = _NP(toks, num, animate, "themselves" if animate and num == "pl" else None)
        if attractor or self.chance(mod_p):
            return head._replace(toks=toks + self.modifier(head, OTHER_NUMBER[num] if attractor else None))
        return head

    def modifier(self, head: _NP, inner_num=None) -> list:
        if self.chance(0.5):
            return [self.pick(NOUN_PREPS)] + self.dp(inner_num, n_adj=self.pick((0, 0, 1))).toks
        rel = "who" if head.animate and self.chance(0.3) else "that"
        return [rel] + self.relative_clause(head, inner_num)

    def relative_clause(self, head: _NP, inner_num=None, inner: Optional[_NP] = None) -> list:
        """A clause with a gap where `head` would be; `inner` is the other noun phrase in it."""
        tense = self.tense()
        if head.animate and self.chance(0.5):  # subject gap: "that likes the cats"
            obj = inner or (self.name() if inner_num is None and self.chance(0.2) else
                            self.dp(inner_num, n_adj=self.pick((0, 0, 1))))
            return self.vp(head, tense, "trans", obj=obj, plain=True)[0]
        # object gap: "that the cats like"; the verb agrees with the inner subject, not the head
        if inner is None:
            inner = (self.subject(simple=True, animate=True) if inner_num is None else
                     self.dp(inner_num, animate=True, n_adj=self.pick((0, 0, 1))))
        verb = self.pick(VERBS_TAKING_ANIMATE if head.animate else VERBS_TAKING_INANIMATE)
        return inner.toks + [self.inflect(verb, inner.num, tense)]

    def name(self, gender=None) -> _NP:
        names, refl = NAMES_BY_GENDER[gender or self.pick("mf")]
        return _NP([self.pick(names)], "sg", True, refl)

    def appositive(self, name: _NP, inner: Optional[_NP] = None) -> _NP:
        """'mary , who john likes ,' -- commas because a name takes no restrictive clause."""
        rc = self.relative_clause(name, inner=inner)
        return name._replace(toks=name.toks + [",", "who"] + rc + [","])

    def conjunct(self, animate: bool) -> list:
        if animate and self.chance(0.4):
            return self.name().toks
        return self.dp(animate=animate).toks

    def subject(self, simple=False, animate=None) -> _NP:
        """`simple` subjects (inside relative clauses) have no modifiers, to bound the depth."""
        x = self.r.random()
        if x < 0.2:
            np = self.name()
            return self.appositive(np) if not simple and self.chance(0.06) else np
        if x < 0.35:
            word, num, refl = self.pick(SUBJECT_PRONOUNS)
            return _NP([word], num, True, refl)
        if x < 0.4 and not simple:  # "john and the dog" is plural whatever its parts are
            return _NP(self.conjunct(True) + ["and"] + self.conjunct(True), "pl", True, "themselves")
        return self.dp(animate=animate, mod_p=0.0 if simple else 0.45)

    def obj(self, plain=False) -> _NP:
        x = self.r.random()
        if x < 0.15:
            return self.name()
        if x < 0.25:
            return _NP([self.pick(OBJECT_PRONOUNS)], "sg", True, None)
        if x < 0.33 and not plain:
            return self.correlative()
        return self.dp(n_adj=self.pick((0, 0, 1)) if plain else None, mod_p=0.0 if plain else 0.3)

    def correlative(self, first=None) -> _NP:
        first = first or self.pick(tuple(CORRELATIVES))
        animate = self.chance(0.6)
        left, right = self.conjunct(animate), self.conjunct(animate)
        return _NP([first, *left, CORRELATIVES[first], *right], "pl", animate, None)

    # ------------------------------------------------------------------ verb phrases
    @staticmethod
    def inflect(verb: tuple, num: str, tense: str) -> str:
        """The form of (base, 3sg, past) for a subject of number `num`; "base" is after do/does/did."""
        return {"past": verb[2], "base": verb[0]}.get(tense, verb[1] if num == "sg" else verb[0])

    @staticmethod
    def copula(num: str, tense: str) -> str:
        return ("is", "are")[num == "pl"] if tense == "present" else ("was", "were")[num == "pl"]

    def locative(self) -> list:
        return [self.pick(LOC_PREPS)] + self.dp(n_adj=self.pick((0, 0, 1))).toks

    def predicate(self) -> list:
        return [self.pick(ADJECTIVES)] if self.chance(0.4) else self.locative()

    def vp(self, subj: _NP, tense: str, kind=None, obj=None, plain=False) -> tuple[list, int]:
        """Returns the tokens and the index of the word that agrees with the subject."""
        if kind is None:
            x = self.r.random()
            if not subj.animate:
                kind = "intr" if x < 0.3 or tense == "base" else "cop"
            elif x < 0.12 and subj.refl:
                kind = "refl"
            elif x < 0.3 and tense != "base":
                kind = "cop"
            else:
                kind = "intr" if x < 0.5 else "trans"
        if kind == "cop":
            return [self.copula(subj.num, tense)] + self.predicate(), 0
        pre = [self.pick(PRE_ADVERBS)] if not plain and self.chance(0.12) else []
        if kind == "intr":
            verb = self.pick(INTRANSITIVE if subj.animate else INANIMATE_INTRANSITIVE)
            post = [self.pick(POST_ADVERBS)] if not plain and self.chance(0.3) else []
            post += self.locative() if not plain and self.chance(0.4) else []
        elif kind == "trans":
            obj = obj or self.obj(plain)
            verb = self.pick(VERBS_TAKING_ANIMATE if obj.animate else VERBS_TAKING_INANIMATE)
            post = obj.toks + ([self.pick(POST_ADVERBS)] if not plain and self.chance(0.1) else [])
        else:  # "refl"
            verb, post = self.pick(REFLEXIVE_VERBS), [subj.refl]
        return pre + [self.inflect(verb, subj.num, tense)] + post, len(pre)

    # ------------------------------------------------------------------ sentences
    def clause(self, tense: str, subj: Optional[_NP] = None, kind=None, obj=None) -> tuple[list, int]:
        subj = subj or self.subject()
        vp, i = self.vp(subj, tense, kind, obj)
        return subj.toks + vp, len(subj.toks) + i

    def question(self, subj: Optional[_NP] = None, form=None) -> list:
        form = form or self.pick(("cop", "cop", "do", "do", "do", "who", "what"))
        tense = self.tense()
        if form == "who":  # "who" is a singular subject
            return ["who"] + self.vp(_NP([], "sg", True, None), tense)[0] + ["?"]
        if form == "cop":
            subj = subj or self.subject()
            return [self.copula(subj.num, tense)] + subj.toks + self.predicate() + ["?"]
        subj = subj or self.subject(simple=form == "what", animate=True if form == "what" else None)
        aux = "did" if tense == "past" else ("does" if subj.num == "sg" else "do")
        if form == "what":  # the object is the fronted "what", so the verb must take inanimates
            return ["what", aux] + subj.toks + [self.pick(VERBS_TAKING_INANIMATE)[0], "?"]
        return [aux] + subj.toks + self.vp(subj, "base")[0] + ["?"]

    def sentence(self) -> list:
        if self.chance(0.18):
            return self.question()
        tense = self.tense()
        toks = ["yesterday", ","] if tense == "past" and self.chance(0.1) else []
        toks += self.clause(tense)[0]
        if self.chance(0.25):
            toks += [self.pick(("and", "but"))] + self.clause(tense)[0]
        return toks + ["."]


def generate_sentences(num_sentences: int, seed: int) -> list[str]:
    """`num_sentences` well-formed training sentences, each ending in " ." or " ?"."""
    g = _Grammar(random.Random(f"antlm-synthetic-train-{seed}"))
    out: list[str] = []
    while len(out) < num_sentences:
        toks = g.sentence()
        if MIN_TOKENS <= len(toks) <= MAX_TOKENS:  # too short or long: draw again
            out.append(" ".join(toks))
    return out


# -------------------------------------------------------------------- minimal pairs
# Each maker returns (good tokens, index of the word to change, the bad word there).
Pair = tuple[list, int, str]


def _pair_attractor(g: _Grammar) -> Pair:
    subj = g.dp(g.pick(("sg", "pl")), attractor=True)
    tense = "present" if g.chance(0.75) else "past"  # past tense agrees only in was/were
    toks, i = g.clause(tense, subj, kind="cop" if tense == "past" else None)
    return toks + ["."], i, AGREE_SWAP[toks[i]]


def _pair_determiner(g: _Grammar, n_adj: Callable[[], int]) -> Pair:
    det = g.pick(tuple(DET_SWAP))
    np = g.dp("sg" if det in SG_DETS else "pl", det=det, n_adj=n_adj())
    if g.chance(0.5):  # subject of a past-tense action: only the noun tells the number
        toks, _ = g.clause("past", np, kind=g.pick(("intr", "trans")) if np.animate else "intr")
        return toks + ["."], 0, DET_SWAP[det]
    toks, i = g.clause(g.tense(), g.subject(animate=True), kind="trans", obj=np)
    return toks + ["."], i + 1, DET_SWAP[det]  # the object starts right after the verb


def _pair_anaphor(g: _Grammar) -> Pair:
    x = g.r.random()  # half singular, half plural antecedents, so the reflexives' frequencies don't decide
    if x < 0.4:  # "mary , who john likes , saw herself"
        name = g.name()
        inner = g.name("f" if name.refl == "himself" else "m") if g.chance(0.5) else g.dp("pl", animate=True)
        subj = g.appositive(name, inner)
    elif x < 0.85:  # "the teachers near the doctor saw themselves", "john and mary saw themselves"
        subj = g.dp("pl", animate=True, attractor=True) if x < 0.7 else \
            _NP(g.conjunct(True) + ["and"] + g.conjunct(True), "pl", True, "themselves")
    else:
        word, num, refl = g.pick(SUBJECT_PRONOUNS[:3])
        subj = _NP([word], num, True, refl)
    toks, _ = g.clause(g.tense(), subj, kind="refl")
    return toks + ["."], len(toks) - 1, g.pick(tuple(r for r in REFLEXIVES if r != subj.refl))


def _pair_a_an(g: _Grammar) -> Pair:
    want_an = g.chance(0.5)  # balance the two directions rather than follow the lexicon's ratio
    np = g.dp("sg", det="a", n_adj=g.pick((0, 0, 1, 1, 2)), mod_p=0.2)
    while (np.toks[0] == "an") != want_an:
        np = g.dp("sg", det="a", n_adj=g.pick((0, 0, 1, 1, 2)), mod_p=0.2)
    bad = "a" if want_an else "an"
    if g.chance(0.4):
        toks, _ = g.clause(g.tense(), np)
        return toks + ["."], 0, bad
    toks, i = g.clause(g.tense(), g.subject(animate=True), kind="trans", obj=np)
    return toks + ["."], i + 1, bad


def _pair_correlative(g: _Grammar) -> Pair:
    first = g.pick(tuple(CORRELATIVES))
    toks, i = g.clause(g.tense(), g.subject(animate=True), kind="trans", obj=g.correlative(first))
    return toks + ["."], i + 1, g.pick(tuple(c for c in CORRELATIVES if c != first))


def _pair_question(g: _Grammar) -> Pair:
    subj = g.dp(g.pick(("sg", "pl")), det="the", attractor=True)  # "the": only the noun tells the number
    toks = g.question(subj, form=g.pick(("cop", "do")))
    if toks[0] == "did":  # "did" does not agree; ask in the present instead
        toks[0] = "does" if subj.num == "sg" else "do"
    return toks, 0, AGREE_SWAP[toks[0]]


_PAIR_MAKERS: dict[str, Callable[[_Grammar], Pair]] = {
    "subject_verb_agreement_attractor": _pair_attractor,
    "determiner_noun_agreement": lambda g: _pair_determiner(g, lambda: 0),
    "determiner_noun_agreement_adjective": lambda g: _pair_determiner(g, lambda: g.pick((1, 1, 2))),
    "anaphor_agreement": _pair_anaphor,
    "a_an_alternation": _pair_a_an,
    "correlative_conjunction": _pair_correlative,
    "question_aux_agreement": _pair_question,
}
PHENOMENA: tuple[str, ...] = tuple(_PAIR_MAKERS)
RIGHT_CONTEXT_PHENOMENA: tuple[str, ...] = (  # the differing word precedes what decides it
    "determiner_noun_agreement", "determiner_noun_agreement_adjective", "a_an_alternation",
    "correlative_conjunction", "question_aux_agreement")


@functools.lru_cache(maxsize=2)
def _default_training_set(seed: int) -> frozenset:
    return frozenset(generate_sentences(DEFAULT_NUM_SENTENCES, seed))


def generate_minimal_pairs(pairs_per_phenomenon: int, seed: int, *,
                           exclude: Optional[Iterable[str]] = None) -> dict[str, list[dict]]:
    """{phenomenon: [{"sentence_good", "sentence_bad", "phenomenon"}, ...]}.

    Good sentences are distinct and never in `exclude`, which defaults to the first
    DEFAULT_NUM_SENTENCES training sentences of `seed` (a prefix of any smaller corpus of that
    seed; `write_corpus` passes its own corpus).
    """
    excluded = _default_training_set(seed) if exclude is None else frozenset(exclude)
    out: dict[str, list[dict]] = {}
    for name, make in _PAIR_MAKERS.items():
        g = _Grammar(random.Random(f"antlm-synthetic-pairs-{seed}-{name}"))
        pairs: list[dict] = []
        seen: set = set()  # membership only, never iterated
        for _ in range(50 * pairs_per_phenomenon + 100):  # bounded: raise rather than loop forever
            if len(pairs) == pairs_per_phenomenon:
                break
            good, i, bad_word = make(g)
            good_text = " ".join(good)
            if not MIN_TOKENS <= len(good) <= MAX_TOKENS or good_text in seen or good_text in excluded:
                continue
            seen.add(good_text)
            bad = good[:i] + [bad_word] + good[i + 1:]
            pairs.append({"sentence_good": good_text, "sentence_bad": " ".join(bad), "phenomenon": name})
        if len(pairs) < pairs_per_phenomenon:
            raise RuntimeError(f"{name}: only {len(pairs)} distinct unseen pairs could be generated")
        out[name] = pairs
    return out


# -------------------------------------------------------------------- files
def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")


def _manifest_matches(out_dir: Path, key: dict) -> bool:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and all(manifest.get(k) == v for k, v in key.items())


def write_corpus(out_dir: Path | str, num_sentences: int = DEFAULT_NUM_SENTENCES, seed: int = 0,
                 pairs_per_phenomenon: int = 500) -> Path:
    """Write corpus/synthetic.{train,dev}, minimal_pairs/<phenomenon>.jsonl and manifest.json.

    Everything is written to a sibling `<out_dir>.tmp-<pid>` and renamed into place, so a
    directory with a manifest is always complete; an existing directory whose manifest has the
    same inputs is reused as is ("words" is derived from them, so it is not compared).
    """
    out_dir = Path(out_dir)
    key = {"generator_version": GENERATOR_VERSION, "num_sentences": num_sentences, "seed": seed,
           "pairs_per_phenomenon": pairs_per_phenomenon, "phenomena": list(PHENOMENA)}
    if _manifest_matches(out_dir, key):
        return out_dir
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        raise FileExistsError(f"{out_dir} exists and is not a generated synthetic corpus; not replacing it")
    sentences = generate_sentences(num_sentences, seed)
    pairs = generate_minimal_pairs(pairs_per_phenomenon, seed, exclude=sentences)
    manifest = dict(key, words=sum(len(s.split()) for s in sentences))

    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    try:
        return _write_and_rename(tmp, out_dir, key, sentences, pairs, manifest)
    except WRITE_ERRORS as err:  # a full disk: one line, and no partial copy left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(out_dir, reason_of(err)) from None


def _write_and_rename(tmp: Path, out_dir: Path, key: dict, sentences: list, pairs: dict, manifest: dict) -> Path:
    """Not atomic.replace_dir: another process may have written the same corpus meanwhile, and then
    its directory (which a reader may hold open) stays and this copy goes."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "corpus").mkdir(parents=True)
    (tmp / "minimal_pairs").mkdir()
    is_dev = [i % DEV_EVERY == DEV_EVERY - 1 for i in range(len(sentences))]
    _write_lines(tmp / "corpus" / "synthetic.train", (s for s, d in zip(sentences, is_dev) if not d))
    _write_lines(tmp / "corpus" / "synthetic.dev", (s for s, d in zip(sentences, is_dev) if d))
    for name, items in pairs.items():
        _write_lines(tmp / "minimal_pairs" / f"{name}.jsonl", (json.dumps(p) for p in items))
    _write_lines(tmp / "manifest.json", [json.dumps(manifest, indent=2, sort_keys=True)])

    try:
        os.rename(tmp, out_dir)  # atomic; fails when out_dir exists and is not empty
        return out_dir
    except OSError:
        pass
    if _manifest_matches(out_dir, key):  # a concurrent writer finished first
        shutil.rmtree(tmp)
        return out_dir
    old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")  # stale corpus: swap, then delete
    os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    shutil.rmtree(old)
    return out_dir
