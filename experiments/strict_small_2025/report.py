"""The strict-small 2025 study's report (RESULTS.md, summary.json, figures/), written from the
records alone, on any machine at any time: the paired statistics over seeds, the learning-curve and
dev-loss figures, the tables."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from antlm.eval.glue_recipes import GLUE_2025
from antlm.stats import holm, paired_stats

from experiments.strict_small_2025.design import (BACKBONES, CONDITIONS, OWN_BACKEND, check_no_paths, load_record,
                                                  parse_schedule, record_done, write_json_atomic)

# ------------------------------------------------------------------------------------- statistics

# ----------------------------------------------------------------------------------------- report

def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value) -> str:
    return "n/a" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def final_scores(record: dict) -> dict:
    """The final model's scores: the full suite under both backends, GLUE, and (from the curve's
    last point) the fast sets with the own backend, as `<task>_fast_<backend>`."""
    scores = dict(record.get("final", {}).get("scores", {}))
    last = record.get("curve", {}).get("final")
    if last:
        for key, value in last["scores"].items():
            task, backend = key.rsplit("_", 1)
            scores[f"{task}_fast_{backend}"] = value
    for backend in ("causal", "mlm", "mntp"):
        parts = [scores.get(f"{t}_{backend}") for t in ("blimp", "blimp_supplement", "ewok", "entity_tracking")]
        if all(p is not None for p in parts):
            scores[f"macro_{backend}"] = float(np.mean(parts))
    return scores


def blind_glue(record: dict) -> set[str]:
    """The record's GLUE scores that cannot tell models apart: a causal fine-tuning whose head reads
    the first token (the 2025 recipe's rule unless a `pooling` override says otherwise), which
    under the causal mask has seen only `<s>`, so every example looks the same to the head and the
    score is the rate of the one class it predicts."""
    final = record.get("final", {})
    if final.get("glue", {}).get("pooling", GLUE_2025.head["causal"].pooling) != "first":
        return set()
    return {k for k in final.get("scores", {}) if k.startswith("glue_") and k.endswith("_causal")}


def backbone_stats(records: list[dict], backbone: str) -> list[dict]:
    """Every condition against the backbone's baseline, per score and per dev loss, paired by seed,
    Holm-corrected over all the tests of the backbone. A score whose values equal another's in every
    run (a fast set that is the whole set, as WUG's) is the same test: it is shown with `same_as` and
    not counted twice in the correction."""
    mine = [r for r in records if r["backbone"] == backbone and "train" in r]
    base_name = CONDITIONS[backbone][0][0]
    rows = []
    for condition in [c for c in dict.fromkeys(r["condition"] for r in mine) if c != base_name]:
        values: dict = {}
        for r in mine:
            if r["condition"] not in (base_name, condition):
                continue
            metrics = {**final_scores(r), "dev_clm_loss": r["train"].get("dev_clm_loss"),
                       "dev_mlm_loss": r["train"].get("dev_mlm_loss")}
            for key, value in metrics.items():
                if key in blind_glue(r):
                    continue
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    values.setdefault(key, {}).setdefault(r["condition"], {})[r["seed"]] = value
        first_of: dict = {}
        for key in sorted(values):
            both = values[key]
            if base_name in both and condition in both:
                same_as = first_of.setdefault(repr(sorted(both.items())), key)
                rows.append({"condition": condition, "baseline": base_name, "metric": key,
                             "same_as": same_as if same_as != key else None,
                             **paired_stats(both[base_name], both[condition])})
    counted = [r for r in rows if r["same_as"] is None]
    for row, adjusted in zip(counted, holm([r["p"] for r in counted])):
        row["p_holm"] = adjusted
    by_test = {(r["condition"], r["metric"]): r for r in counted}
    for row in rows:
        if row["same_as"] is not None:
            row["p_holm"] = by_test[row["condition"], row["same_as"]]["p_holm"]
    return rows


def plot_curves(records: list[dict], backbone: str, path: Path) -> Optional[Path]:
    """One panel per fast-set task: mean over seeds per condition against words seen, the spread
    (min-max over seeds) as a band, the phases of the other objective shaded."""
    mine = [r for r in records if r["backbone"] == backbone and r.get("curve")]
    if not mine:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = OWN_BACKEND[backbone]
    tasks = sorted({k for r in mine for e in r["curve"].values() for k in e["scores"]})
    cols = min(3, len(tasks))
    fig, axes = plt.subplots(math.ceil(len(tasks) / cols), cols, figsize=(max(6.0, 4.2 * cols), 0.6 + 3.3 * math.ceil(len(tasks) / cols)),
                             squeeze=False)
    conditions = list(dict.fromkeys(r["condition"] for r in mine))
    for ax, task in zip(axes.flat, tasks):
        spans, lowest = [], math.inf
        for index, condition in enumerate(conditions):
            runs = [r for r in mine if r["condition"] == condition]
            by_words: dict = {}
            for r in runs:
                for e in r["curve"].values():
                    if e["scores"].get(task) is not None and e["words_seen"]:
                        by_words.setdefault(e["words_seen"], []).append(e["scores"][task])
            words = sorted(by_words)
            lowest = min([lowest, *words])
            mean = [np.mean(by_words[w]) for w in words]
            color = f"C{index}"
            ax.plot(words, mean, marker="o", ms=3, color=color, label=f"{condition} (n={len(runs)})")
            ax.fill_between(words, [min(by_words[w]) for w in words], [max(by_words[w]) for w in words],
                            color=color, alpha=0.15, lw=0)
            # Shade the phases of the other objective than the backbone's baseline (AntLM's MLM
            # phases for BabyLlama, its CLM phases for LTG-BERT; the whole of a mix run is one phase).
            epoch, start, baseline = runs[0]["corpus_words"], 0.0, OWN_BACKEND[backbone].replace("causal", "clm")
            for epochs, objective in parse_schedule(runs[0]["schedule"]):
                if objective not in (baseline, "mix"):
                    spans.append((start * epoch, (start + epochs) * epoch, color))
                start += epochs
        # A phase from word 0 would stretch the log axis down to 1 word: the axis starts just
        # before the first checkpoint, and so do the phases.
        left = lowest / 1.5 if lowest < math.inf else 1.0
        for first, last, color in spans:
            ax.axvspan(max(first, left), last, color=color, alpha=0.08, lw=0)
        ax.set_xscale("log")
        ax.set_xlim(left=left)
        ax.set_title(task.replace(f"_{own}", f" ({own})"), fontsize=9)
        ax.set_xlabel("words seen")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{backbone}: fast sets at the word checkpoints\n(band: min-max over seeds; shaded: the other "
                 "objective's phases)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dev(records: list[dict], backbone: str, path: Path) -> Optional[Path]:
    mine = [r for r in records if r["backbone"] == backbone and r.get("train", {}).get("dev_curve")]
    if not mine:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for index, condition in enumerate(dict.fromkeys(r["condition"] for r in mine)):
        for column, ax in enumerate(axes):
            for n, r in enumerate(x for x in mine if x["condition"] == condition):
                points = [(row[0], row[1 + column]) for row in r["train"]["dev_curve"]
                          if row[0] and row[1 + column] is not None]
                if points:
                    ax.plot(*zip(*points), color=f"C{index}", alpha=0.7, label=condition if n == 0 else None)
    for ax, objective in zip(axes, ("clm", "mlm")):
        ax.set_title(f"dev {objective} loss", fontsize=9)
        ax.set_xlabel("words seen")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# Issue 20's bar for a scale whose answer says something: the 10-epoch CLM BabyLlama's fast BLiMP.
BASELINE_TARGET = 60.0


def baseline_target_line(records: list[dict]) -> str:
    values = [final_scores(r)["blimp_fast_causal"] for r in records
              if r["condition"] == "clm" and "blimp_fast_causal" in final_scores(r)]
    if not values:
        return f"The CLM baseline's fast BLiMP (causal) is not scored yet (target: at least {BASELINE_TARGET:.0f})."
    mean = float(np.mean(values))
    return (f"**The CLM baseline's fast BLiMP (causal): {mean:.2f}** (runs: {', '.join(f'{v:.2f}' for v in values)}), "
            f"{'at or above' if mean >= BASELINE_TARGET else 'below'} the target of {BASELINE_TARGET:.0f} that the "
            "scale was chosen for (chance: 50).")


# A retrained run's `retrain_identical`, as RESULTS.md shows it (None: a runner that did not check).
RETRAIN_NOTE = {True: "(the same model)", False: "(**a different model from the curve's**)", None: "(not checked)"}


def write_report(records_dir: Path, report_dir: Path) -> Path:
    """RESULTS.md, summary.json and figures/ from the records alone (any machine, any time)."""
    plan = load_record(records_dir / "plan.json")
    records = [load_record(p) for p in sorted(records_dir.glob("*.json")) if p.name != "plan.json"]
    records = [r for r in records if "train" in r]
    planned = plan.get("runs", [r["name"] for r in records])
    has_eval = plan.get("has_eval", True)
    finished = {r["name"] for r in records if record_done(r, has_eval)}
    complete = bool(planned) and all(n in finished for n in planned)
    report_dir.mkdir(parents=True, exist_ok=True)
    summary = {"scale": plan.get("scale"), "complete": complete, "runs_planned": len(planned),
               "runs_finished": len(finished & set(planned)), "runs": []}
    for r in records:
        summary["runs"].append({"backbone": r["backbone"], "condition": r["condition"], "schedule": r["schedule"],
                                "seed": r["seed"], "words_seen": r["train"]["words_seen"], "params": r["train"]["params"],
                                "scores": final_scores(r), "dev_clm_loss": r["train"]["dev_clm_loss"],
                                "dev_mlm_loss": r["train"]["dev_mlm_loss"]})
    write_json_atomic(report_dir / "summary.json", summary)

    scale = plan.get("scale", "?")
    lines = ["# AntLM against its baselines under the BabyLM 2025 strict-small rules: results", "",
             f"Written by `python experiments/strict_small_2025/run.py --scale {scale}` from its records "
             f"(`records/{scale}/`); README.md here has the design. Do not edit by hand.", "",
             "**Question.** At equal words seen (10 epochs), does alternating CLM and MLM (AntLM) beat the "
             "single-objective baseline of the same backbone: BabyLlama trained causally, LTG-BERT trained masked?", ""]
    if plan:
        lines += ["**Design.** " + plan.get("design", ""), ""]
    lines += ["**Data caveat.** The embedded synthetic corpus and tiny models: a check that the recipe runs, "
              "no evidence about the question." if scale == "smoke" else "**Data caveat.** The corpus is drawn from the shared snippets corpus, a ~7.45M-word approximation of "
              "the BabyLM 2024 text: not the official strict-small split; scores are not comparable with the "
              "leaderboard." + (" At CPU scale the models are ~5M parameters: a statement about small models." if
                                scale == "cpu" else ""), ""]
    lines += ["## Status", "", f"{len(finished & set(planned))} of {len(planned)} planned runs are finished "
              f"({len(records)} have at least finished training)."]
    if not complete:
        lines += ["", "**The study is incomplete: no conclusions are drawn from incomplete data.** The numbers below "
                  "are the runs done so far; run the same command again to continue."]
    lines += ["", "| run | params | words seen | dev clm | dev mlm | train min | eval min | tokens/s | stages | commit |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in records:
        t = r["train"]
        eval_s = sum(e.get("seconds", 0) for e in r.get("curve", {}).values()) + r.get("final", {}).get("seconds", 0)
        # A run cut off by a session's end resumes in the next; train min then spans the invocations.
        resumed = f" (resumed {t['interruptions']}x)" if t.get("interruptions") else ""
        stages = "train" + resumed + (f", curve {len(r.get('curve', {}))} pts" if r.get("curve") else "") + \
                 (", final" if "final" in r else "")
        if "retrain_s" in t:
            stages += ", retrained for the final suite " + RETRAIN_NOTE[t.get("retrain_identical")]
        lines.append(f"| {r['name']} | {t['params']:,} | {t['words_seen']:,} | {_fmt(t['dev_clm_loss'], 3)} | "
                     f"{_fmt(t['dev_mlm_loss'], 3)} | {t['train_s'] / 60:.1f} | {eval_s / 60:.1f} | "
                     f"{_fmt(t.get('tokens_per_s'), 0)} | {stages} | {str(t.get('commit'))[:12]} |")
    figures = report_dir / "figures"
    for backbone in BACKBONES:
        mine = [r for r in records if r["backbone"] == backbone]
        if not mine:
            continue
        own = OWN_BACKEND[backbone]
        lines += ["", f"## {backbone}", ""]
        curve = plot_curves(records, backbone, figures / f"{scale}-{backbone}-curves.png")
        dev = plot_dev(records, backbone, figures / f"{scale}-{backbone}-dev.png")
        lines += [f"![learning curves](figures/{p.name})" for p in (curve, dev) if p is not None]
        seen = {(r["condition"], r["train"]["words_seen"]) for r in mine}
        if len({words for _, words in seen}) > 1:  # e.g. a schedule whose phases sum to 9.99 epochs
            lines += ["", "Words seen differ between conditions: " + ", ".join(
                f"{condition} {words:,}" for condition, words in sorted(seen)) + " (README.md says why)."]
        keys = sorted({k for r in mine for k in final_scores(r)})
        if keys:
            conditions = list(dict.fromkeys(r["condition"] for r in mine))
            lines += ["", "Final models, mean ± sd over seeds (n):", "",
                      "| score | " + " | ".join(conditions) + " |", "|---|" + "---:|" * len(conditions)]
            for key in keys:
                cells = []
                for c in conditions:
                    v = [final_scores(r)[key] for r in mine if r["condition"] == c and key in final_scores(r)]
                    cells.append("n/a" if not v else f"{np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2f} "
                                                     f"({len(v)})")
                lines.append(f"| {key} | " + " | ".join(cells) + " |")
        blind = sorted(set().union(*(blind_glue(r) for r in mine)))
        if blind:
            lines += ["", f"{', '.join(blind)}: the 2025 recipe's GLUE head reads the first token, which under the "
                      "causal mask has seen only `<s>`; every example looks the same to it, so each score is the "
                      "rate of the one class it predicts (the majority class of the training rows), whatever the "
                      "model knows. They compare nothing and are left out of the statistics (the reference "
                      "pipeline's own behaviour; `--glue-pooling last` is antlm's counterpart of its "
                      "`--take_final`)."]
        constant: dict = {}
        for r in mine:
            for key in set(r.get("final", {}).get("glue_constant", [])) - blind_glue(r):
                constant.setdefault(key, []).append(r["name"])
        if constant:
            lines += ["", "GLUE scores whose validation predictions were all one class, so the score is that class's "
                      "rate (kept in the statistics: not learning the task is a result): "
                      + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(constant.items())) + "."]
        if backbone == "babyllama":
            lines += ["", baseline_target_line(mine)]
        backbone_complete = all(n in finished for n in planned if n.startswith(backbone + "-"))
        if not backbone_complete:
            lines += ["", f"Statistics for {backbone} follow once all its planned runs are finished."]
            continue
        rows = backbone_stats(records, backbone)
        primary = [r for r in rows if r["metric"] in (f"blimp_fast_{own}", f"blimp_{own}", f"macro_{own}")]
        lines += ["", "**Answer (paired over seeds, 95% CI from the t distribution, Holm over "
                  f"{sum(r['p'] is not None and r['same_as'] is None for r in rows)} tests):**", ""]
        for r in primary:
            survives = r["p_holm"] is not None and r["p_holm"] < 0.05
            lines.append(f"- {r['condition']} - {r['baseline']}, {r['metric']}: {_fmt(r['diff'])} "
                         f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}], p = {_p(r['p'])}, Holm p = {_p(r['p_holm'])} "
                         f"(n = {r['n']}): " + ("**a difference that survives the correction**" if survives else
                                                "no difference that survives the correction"))
        lines += ["", "| comparison | metric | baseline | other | difference [95% CI] | p | Holm p | n |",
                  "|---|---|---:|---:|---|---:|---:|---:|"]
        for r in rows:
            metric = r["metric"] + (f" (= {r['same_as']}, one test)" if r["same_as"] else "")
            lines.append(f"| {r['condition']} - {r['baseline']} | {metric} | {_fmt(r['base_mean'])} | "
                         f"{_fmt(r['other_mean'])} | {_fmt(r['diff'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | "
                         f"{_p(r['p'])} | {_p(r['p_holm'])} | {r['n']} |")
        lines += ["", "Dev losses: lower is better, so a negative difference favours the other condition."]
    lines += ["", "## What this does and does not mean", "",
              "It compares training objectives at equal words seen on one corpus sample and one model size per "
              "backbone, with a paired test over seeds. It does not say how the conditions compare at other sizes, "
              "on the official strict-small corpus, or with other hyper-parameters (tuned for the baseline, not per "
              "condition)."]
    text = "\n".join(lines).rstrip() + "\n"
    check_no_paths(text, "RESULTS.md")
    (report_dir / "RESULTS.md").write_text(text, encoding="utf-8")
    return report_dir / "RESULTS.md"
