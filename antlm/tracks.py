"""BabyLM challenge tracks as data: corpus word limit, words-seen limit, checkpoint series.

Since 2025 the challenge caps how much text a model may see, not only how large its corpus is:
strict-small trains on at most 10M corpus words for at most 100M words seen (10 epochs), strict
on 100M for 1B. A submission carries intermediate checkpoints, published as Hugging Face
revisions named `chck_1M` ... `chck_10M`, `chck_20M` ... `chck_100M` (and `chck_200M` ...
`chck_1000M` for strict): every 1M words up to 10M, every 10M up to 100M, every 100M up to 1B.

Words seen are counted the way the challenge counts them: the whitespace-separated words of the
training files (`len(text.split())` over every *.train / *.txt file) make one epoch's words; a
run that has consumed a fraction f of an epoch's tokens has seen f x corpus words. With a fixed
number of tokens per optimizer step, words seen after `step` steps are
`step * corpus_words / steps_per_epoch` (exact integer arithmetic in `words_after`), so an
epoch-unit phase of E epochs counts E x corpus words (up to its rounding to whole steps), and a
step- or token-unit phase counts its tokens converted at the corpus' tokens per word. The total
is known once the corpus is tokenized, so a run over its track's limit is refused before step 1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from antlm.errors import UserError


@dataclass(frozen=True)
class Track:
    name: str
    corpus_words: int
    """Most whitespace words the training files may hold."""
    words_seen: Optional[int]
    """Most words a run may see (epochs x corpus words); None: no cap (2024 rules)."""
    series: bool
    """Whether the rules ask for the intermediate checkpoint series (word_checkpoints defaults to babylm)."""


_RULES_2025 = {"strict-small": (10_000_000, 100_000_000), "strict": (100_000_000, 1_000_000_000)}
TRACKS: dict[str, Track] = {
    "strict-small-2024": Track("strict-small-2024", 10_000_000, None, False),
    # 2026 keeps the 2025 rules; the aliases let a config name the year it was submitted to.
    **{f"{kind}-{year}": Track(f"{kind}-{year}", corpus, seen, True)
       for year in (2025, 2026) for kind, (corpus, seen) in _RULES_2025.items()},
}
NO_TRACK = "none"
SERIES_CAP = 1_000_000_000  # the babylm series without a track cap runs to strict's 1B


class TrackError(UserError):
    pass


def get_track(name: str) -> Optional[Track]:
    """The track of `data.track`; None for `none`."""
    if name == NO_TRACK:
        return None
    if name not in TRACKS:
        raise TrackError(f"unknown data.track '{name}' (use {', '.join(sorted(TRACKS))} or none)")
    return TRACKS[name]


_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)([kKmMbB]?)$")


def babylm_series(cap: int) -> list[int]:
    """1M..10M by 1M, 20M..100M by 10M, 200M..1B by 100M; those up to `cap`."""
    marks = [i * 1_000_000 for i in range(1, 11)] + [i * 10_000_000 for i in range(2, 11)] + \
            [i * 100_000_000 for i in range(2, 11)]
    return [m for m in marks if m <= cap]


def parse_milestones(text: Optional[str], track: Optional[Track]) -> list[int]:
    """`train.word_checkpoints` as sorted word counts. None: the track's default (babylm for the
    2025/2026 tracks, none otherwise); `babylm`: the challenge's series up to the track's cap;
    `none`: no series; else a comma list of amounts with optional k/M/B suffixes (`1M,5M,10M`)."""
    if text is None:
        text = "babylm" if track is not None and track.series else "none"
    text = text.strip()
    if text.lower() == "none":
        return []
    if text.lower() == "babylm":
        return babylm_series(track.words_seen if track is not None and track.words_seen else SERIES_CAP)
    marks = set()
    for item in text.split(","):
        match = _AMOUNT.match(item.strip())
        if not match:
            raise TrackError(f"train.word_checkpoints: bad milestone '{item.strip()}' in '{text}' "
                             "(expected babylm, none, or a list like 1M,5M,10M)")
        words = float(match[1]) * _SUFFIX[match[2].lower()]
        if words != int(words) or words <= 0:
            raise TrackError(f"train.word_checkpoints: milestone '{item.strip()}' is not a positive whole number of words")
        marks.add(int(words))
    return sorted(marks)


def milestone_name(words: int) -> str:
    """The revision name of a milestone, as the 2025 pipeline's --revision_name: chck_1M, chck_1000M."""
    for suffix, scale in (("M", 1_000_000), ("k", 1_000)):
        if words % scale == 0:
            return f"chck_{words // scale}{suffix}"
    return f"chck_{words}"


def words_after(step: int, corpus_words: int, steps_per_epoch: int) -> int:
    """Words seen after `step` optimizer steps (floor of step / steps_per_epoch x corpus words)."""
    return step * corpus_words // steps_per_epoch


def crossed(milestone: int, step: int, corpus_words: int, steps_per_epoch: int) -> bool:
    """Whether `step` steps have seen at least `milestone` words (exact: no rounding)."""
    return milestone * steps_per_epoch <= step * corpus_words


def check_corpus(track: Optional[Track], corpus_words: int, root) -> None:
    if track is not None and corpus_words > track.corpus_words:
        raise TrackError(f"corpus {root} has {corpus_words:,} training words, over track {track.name}'s "
                         f"limit of {track.corpus_words:,}")


def check_schedule(track: Optional[Track], schedule: str, total_steps: int, corpus_words: int, steps_per_epoch: int) -> int:
    """Words the whole schedule would see; refuses a schedule over the track's words-seen cap."""
    total = words_after(total_steps, corpus_words, steps_per_epoch)
    if track is not None and track.words_seen is not None and total > track.words_seen:
        raise TrackError(f"schedule '{schedule}' would see {total:,} words ({total_steps / steps_per_epoch:.2f} epochs "
                         f"of {corpus_words:,}), over track {track.name}'s limit of {track.words_seen:,} words seen")
    return total
