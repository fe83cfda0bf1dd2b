"""Statistics over seeds for comparing training conditions: the paired difference (seed k of one
condition with seed k of the other), its t confidence interval and paired t-test, and the Holm
correction for many such tests. Shared by `antlm report` and the experiments' reports."""
from __future__ import annotations

import math
import warnings

import numpy as np


def paired_stats(base: dict, other: dict) -> dict:
    """other - base over the seeds both have: n, both means, the mean difference, its 95% confidence
    interval from the t distribution and the paired t-test p. CI and p are None under two pairs; p
    is None when every difference is the same (t undefined)."""
    from scipy import stats

    seeds = sorted(set(base) & set(other))
    out = {"n": len(seeds), "base_mean": None, "other_mean": None, "diff": None, "ci_low": None, "ci_high": None,
           "p": None}
    if not seeds:
        return out
    a, b = np.array([base[s] for s in seeds], float), np.array([other[s] for s in seeds], float)
    diffs = b - a
    out.update(base_mean=float(a.mean()), other_mean=float(b.mean()), diff=float(diffs.mean()))
    if len(seeds) < 2:
        return out
    half = float(stats.t.ppf(0.975, len(seeds) - 1) * diffs.std(ddof=1) / math.sqrt(len(seeds)))
    out.update(ci_low=out["diff"] - half, ci_high=out["diff"] + half)
    if not np.allclose(diffs, diffs[0], rtol=0, atol=1e-9):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["p"] = float(stats.ttest_rel(b, a).pvalue)
    return out


def holm(pvalues: list) -> list:
    """Holm-Bonferroni adjusted p-values (None stays None and does not count as a test)."""
    ranked = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list = [None] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[index] = running
    return adjusted
