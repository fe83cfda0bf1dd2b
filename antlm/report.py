"""`antlm report`: compare training runs in one Markdown report with plots and paired seed tests.

Each run dir holds config.yaml and metrics.jsonl (written by `antlm train`) and, optionally,
evaluation results from `antlm eval`: `<run>/<results_name>` (default results.json) if present,
otherwise every `<run>/eval/*.json`, merged by scoring backend (the first file, in name order,
that holds a backend wins; later ones are listed as ignored).

Runs whose configs are equal once the seed and execution-only keys are removed form one
*condition*; their seeds are replicates. Each other condition is compared with the baseline by a
paired t-test over the seeds both ran: one seed gives both the same initial weights and data order.

A results file from `antlm eval RUN --series` also holds a `series` (one entry per word
checkpoint, scored on the fast sets): the report then draws learning curves, each task's score and
the dev losses against words seen, with the schedule's phases shaded behind them.

Plots are drawn on bare `matplotlib.figure.Figure` objects, which render PNGs with the Agg
canvas; pyplot is never imported, so no display is needed and no global backend is changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter

from antlm.atomic import write_text
from antlm.errors import UserError
from antlm.eval.outputs import compat_of
from antlm.schedule import Schedule, ScheduleError
from antlm.stats import paired_stats

TASKS = ("blimp", "blimp_supplement", "ewok", "entity_tracking", "wug_adj", "wug_past", "glue", "macro")
# The 2024 columns are always shown (n/a where not run); the 2025 tasks only when some run has them.
ALWAYS_SHOWN = ("blimp", "blimp_supplement", "ewok", "glue", "macro")
PLOTS = ("loss_by_objective.png", "dev_loss.png", "scores.png")
CURVES = "learning_curves.png"  # only for runs whose results hold a `series` (antlm eval --series)
SNIPPETS_MARK = "babylm_2024_100M_snippets"
SNIPPETS_CAVEAT = "The shared corpus is a ~7.45M-word sample of BabyLM 2024 text, not the official strict-small split."
# Keys that change how a run is executed or logged, not what it learns (model.vocab_size is set
# from the tokenizer at run time): runs that differ only in these are replicates of one condition.
NON_CONDITION_KEYS = {"train.seed", "train.device", "train.threads", "train.progress", "train.compile", "train.log_every",
                      "train.progress_every_s", "train.log_to",
                      "train.eval_every", "train.eval_batches", "train.checkpoint_every", "train.keep_checkpoints",
                      "train.micro_batch_size", "train.max_bad_steps", "data.cache_dir", "model.vocab_size"}
PHASE_SHADE = {"clm": "#cfe2f3", "mlm": "#fde4c8", "mix": "#d9ead3"}
OBJECTIVE_STYLE = {"clm": ("-", "o"), "mlm": ("--", "^"), "mix": (":", "s")}
DPI = 120


@dataclass
class Run:
    path: Path
    name: str
    config: dict  # flattened: {"train.seed": 0, ...}
    train: list[dict]
    dev: list[dict]
    scores: dict = field(default_factory=dict)  # backend -> task -> score
    evals: list[str] = field(default_factory=list)  # one line per results file used
    settings: set = field(default_factory=set)  # (mode, limit) of each results file
    notes: list[str] = field(default_factory=list)
    series: list[dict] = field(default_factory=list)  # `antlm eval --series` checkpoint entries, words-seen order
    series_final: Optional[dict] = None  # the final model's entry of that file: revision, words_seen, eval_set, scores

    @property
    def seed(self) -> int:
        return self.config.get("train.seed", 0)

    @property
    def tokens_per_step(self) -> int:
        return int(self.config.get("train.batch_size", 0)) * int(self.config.get("data.seq_len", 0))


@dataclass
class Condition:
    label: str
    runs: list[Run]
    color: str = "C0"

    def per_seed(self, backend: str, task: str) -> dict[int, float]:
        """seed -> score; with two runs of one seed, the first (by dir name) counts: hence reversed()."""
        return {r.seed: float(v) for r in reversed(self.runs) if (v := r.scores.get(backend, {}).get(task)) is not None}


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    if not path.is_file():
        raise UserError(f"no metrics.jsonl in run {path.parent} (expected {path})")
    rows = []
    for number, line in ((n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise UserError(f"{path}:{number}: not a JSON line") from None
    rows.sort(key=lambda r: r.get("step", 0))
    train = [{"phase": r.get("objective", "?"), "objective": "?", **r} for r in rows if r.get("split") == "train" and "loss" in r]
    return train, [r for r in rows if r.get("split") == "dev"]


def _read_results(run: Run, results_name: str) -> None:
    first = run.path / results_name
    files = [first] if first.is_file() else sorted((run.path / "eval").glob("*.json"))
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = {backend: {**{t: e.get("score") for t, e in entry.get("tasks", {}).items() if t in TASKS},
                               "macro": entry.get("macro")} for backend, entry in data["results"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):  # JSON and Unicode errors are ValueErrors
            run.notes.append(f"{path.name} is not an `antlm eval` results file; ignored")
            continue
        for backend, scores in found.items():
            if backend in run.scores:
                run.notes.append(f"{path.name}: {backend} scores already read from another file; ignored")
            else:
                run.scores[backend] = scores
        if isinstance(data.get("series"), list) and not run.series:
            run.series = sorted(data["series"], key=lambda e: e.get("words_seen") or 0)
            run.series_final = {k: data.get(k) for k in ("revision", "words_seen", "eval_set", "scores", "limit")}
        run.settings.add((compat_of(data), data.get("limit")))
        limit = f"limit {data['limit']} items per subtask" if data.get("limit") else "all items"
        run.evals.append(f"{path.relative_to(run.path)}: compat {compat_of(data)}, backend {data.get('backend')}, "
                         f"{limit}{'' if data.get('complete') else ', INCOMPLETE'}")
    if not run.scores:
        run.notes.append(f"no evaluation results ({results_name} or eval/*.json); plots only")


def read_run(path: Path, results_name: str = "results.json") -> Run:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    if not (path / "config.yaml").is_file():
        raise UserError(f"no config.yaml in run {path}")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise UserError(f"{path / 'config.yaml'} is not valid YAML") from None
    train, dev = _read_metrics(path / "metrics.jsonl")
    run = Run(path, path.resolve().name, _flatten(config), train, dev)
    _read_results(run, results_name)
    if not train:
        run.notes.append("metrics.jsonl has no training rows")
    if not (path / "final").is_dir():
        last = train[-1]["step"] if train else 0
        run.notes.append(f"unfinished: no final/ (last logged step {last})")
    return run


def group_conditions(runs: list[Run]) -> list[Condition]:
    """Conditions in order of first appearance; label `backbone schedule`, made unique by the
    config keys that tell colliding conditions apart (or the first run's dir name when many)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if k not in NON_CONDITION_KEYS}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    members = [sorted(g, key=lambda r: (r.seed, r.name)) for g in groups.values()]
    base = [f"{g[0].config.get('model.backbone', '?')} {g[0].config.get('schedule', '?')}" for g in members]
    labels = []
    for index, group in enumerate(members):
        rivals = [members[j][0] for j in range(len(members)) if base[j] == base[index] and j != index]
        label = base[index]
        if rivals:
            mine = {k: v for k, v in group[0].config.items() if k not in NON_CONDITION_KEYS}
            diff = sorted(k for k in mine if any(r.config.get(k) != mine[k] for r in rivals))
            extra = ", ".join(f"{k}={mine[k]}" for k in diff)
            label += f" [{extra}]" if 0 < len(diff) <= 2 and len(extra) <= 60 else f" [{group[0].name}]"
        while label in labels:  # two dirs with one name in different places: still unique
            label += "'"
        labels.append(label)
    return [Condition(label, group, f"C{i % 10}") for i, (label, group) in enumerate(zip(labels, members))]


# ---------------------------------------------------------------------------------------- plots

def _kind(phase: str) -> str:
    return "mix" if "mix(" in phase else phase.split("_", 1)[-1]


def _row_kind(row: dict) -> str:
    """A row of a mixed phase averages both losses over the logging window: it is neither."""
    return "mix" if _kind(row["phase"]) == "mix" else row["objective"]


def phase_spans(run: Run) -> list[tuple[int, int, str]]:
    """(first step, end step, phase text) of each schedule phase. The schedule is re-resolved
    with the run's steps per epoch (recovered from the logged epoch) and kept only if it names
    every logged row's phase; otherwise boundaries come from the rows themselves, which places
    them to within train.log_every steps."""
    rows = run.train
    if not rows:
        return []
    last = rows[-1]
    if last.get("epoch"):
        try:
            schedule = Schedule.of_saved_run(run.config, max(1, round(last["step"] / last["epoch"])), max(1, run.tokens_per_step))
            if all(schedule.phases[schedule.phase_index(r["step"] - 1)].phase.text == r["phase"] for r in rows):
                return [(p.start, min(p.end, last["step"]), p.phase.text) for p in schedule.phases if p.start < last["step"]]
        except (ScheduleError, IndexError, KeyError, TypeError):
            pass
    spans, start = [], 0
    for previous, row in zip([None] + rows[:-1], rows):
        if previous is not None and row["phase"] != previous["phase"]:
            spans.append((start, previous["step"], previous["phase"]))
            start = previous["step"]
    return spans + [(start, last["step"], last["phase"])]


def _x_of(run: Run, use_tokens: bool) -> Callable[[int], float]:
    return (lambda step: step * run.tokens_per_step) if use_tokens else float


def _label_x(ax, use_tokens: bool) -> None:
    ax.set_xlabel("training tokens" if use_tokens else "optimizer step")
    if use_tokens:
        ax.xaxis.set_major_formatter(EngFormatter())  # 250k, 10M rather than an offset exponent


def plot_train_loss(conditions: list[Condition], path: Path, use_tokens: bool) -> None:
    fig = Figure(figsize=(10, 1.2 + 2.8 * len(conditions)), layout="constrained")
    axes = fig.subplots(len(conditions), 1, squeeze=False, sharex=True)[:, 0]
    shaded, drawn = set(), set()  # for a legend without entries for what is not on the figure
    for ax, cond in zip(axes, conditions):
        lead = cond.runs[0]
        for start, end, text in phase_spans(lead):
            x = _x_of(lead, use_tokens)
            shaded.add(_kind(text))
            ax.axvspan(x(start), x(end), color=PHASE_SHADE.get(_kind(text), "#eeeeee"), zorder=0, lw=0)
        for index, run in enumerate(cond.runs):
            x = _x_of(run, use_tokens)
            for kind, (style, marker) in OBJECTIVE_STYLE.items():
                # NaN where another objective ran, so a line never bridges a phase of the other loss.
                ys = [r["loss"] if _row_kind(r) == kind else np.nan for r in run.train]
                if not np.all(np.isnan(np.array(ys, dtype=float))):
                    drawn.add(kind)
                    ax.plot([x(r["step"]) for r in run.train], ys, style, marker=marker, markersize=3,
                            color=cond.color, alpha=1.0 - 0.5 * index / max(1, len(cond.runs)), lw=1.2)
        seeds = ", ".join(str(r.seed) for r in cond.runs)
        ax.set_title(f"{cond.label}: {len(cond.runs)} run(s), seed{'s' if len(cond.runs) > 1 else ''} {seeds}", fontsize=10)
        ax.set_ylabel("train loss")
        ax.grid(alpha=0.3)
    _label_x(axes[-1], use_tokens)
    handles = [Line2D([], [], ls=s, marker=m, color="0.3", label=f"{k.upper()} rows")
               for k, (s, m) in OBJECTIVE_STYLE.items() if k in drawn]
    handles += [Patch(color=c, label=f"{k.upper()} phase") for k, c in PHASE_SHADE.items() if k in shaded]
    axes[0].legend(handles=handles, fontsize=8, ncol=2, loc="upper right")
    fig.suptitle("Training loss by objective (shading: schedule phases; a MIX row averages both losses)")
    fig.savefig(path, dpi=DPI)


def plot_dev_loss(conditions: list[Condition], path: Path, use_tokens: bool) -> None:
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax = fig.subplots()
    for cond in conditions:
        for run in cond.runs:
            x = _x_of(run, use_tokens)
            for key, style in (("dev_clm_loss", "-"), ("dev_mlm_loss", "--")):
                points = [(x(r["step"]), r[key]) for r in run.dev if r.get(key) is not None]
                if points:
                    ax.plot(*zip(*points), style, color=cond.color, marker=".", lw=1.3, alpha=0.85)
    handles = [Line2D([], [], color=c.color, label=f"{c.label} ({len(c.runs)} runs)") for c in conditions]
    handles += [Line2D([], [], ls="-", color="0.3", label="dev CLM loss"), Line2D([], [], ls="--", color="0.3", label="dev MLM loss")]
    ax.legend(handles=handles, fontsize=8)
    _label_x(ax, use_tokens)
    ax.set_ylabel("dev loss (nats per target token)")
    ax.set_title("Dev loss of both objectives, every run")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=DPI)


def shown_tasks(conditions: list[Condition]) -> list[str]:
    present = {t for c in conditions for r in c.runs for scores in r.scores.values() for t, v in scores.items()
               if v is not None}
    return [t for t in TASKS if t in ALWAYS_SHOWN or t in present]


def plot_scores(conditions: list[Condition], backends: list[str], path: Path) -> None:
    tasks = shown_tasks(conditions)
    panel_width = 1.5 + len(tasks) * (0.5 + 0.35 * len(conditions))
    fig = Figure(figsize=(max(7.0, len(backends) * panel_width), 5.6), layout="constrained")
    axes = fig.subplots(1, len(backends), squeeze=False, sharey=True)[0]
    width = 0.8 / len(conditions)
    low = 100.0
    for ax, backend in zip(axes, backends):
        for ci, cond in enumerate(conditions):
            for ti, task in enumerate(tasks):
                # A correlation over too few items (wug with --limit) can be NaN: not drawn.
                values = [v for v in cond.per_seed(backend, task).values() if np.isfinite(v)]
                if not values:
                    continue
                mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                xpos = ti - 0.4 + width * (ci + 0.5)
                ax.bar(xpos, mean, width * 0.9, yerr=std, capsize=3, color=cond.color)
                ax.plot([xpos] * len(values), values, "k.", markersize=4)  # the seeds themselves
                ax.text(xpos, mean + std + 0.5, f"n={len(values)}", ha="center", va="bottom", fontsize=7)
                low = min(low, min(values), mean - std)
        ax.set_xticks(range(len(tasks)), tasks, rotation=20)
        ax.set_title(f"{backend} scoring")
        ax.grid(axis="y", alpha=0.3)
    # Bars from 0 would hide differences of a point or two; the axis starts just below the data.
    # Correlations (wug) can be negative; accuracies start the axis at 0 at the lowest.
    axes[0].set_ylim(np.floor(low / 5) * 5 - 5 if low < 0 else max(0.0, np.floor(low / 5) * 5 - 5), 100)
    axes[0].set_ylabel("score (%; bar: mean, error bar: std over seeds, dots: seeds)")
    fig.legend(handles=[Patch(color=c.color, label=c.label) for c in conditions], fontsize=8, loc="outside lower center",
               ncol=min(3, len(conditions)))
    fig.suptitle("Scores per condition (y axis does not start at 0)")
    fig.savefig(path, dpi=DPI)


def words_of_step(run: Run) -> Optional[Callable[[int], float]]:
    """Steps to words seen: exact from word_checkpoints/series.json (antlm/tracks.py's words_after),
    else the ratio the metrics rows log (`words_seen` beside `step`); None when neither is there."""
    try:
        index = json.loads((run.path / "word_checkpoints" / "series.json").read_text(encoding="utf-8"))
        corpus, per_epoch = int(index["corpus_words"]), int(index["steps_per_epoch"])
        return lambda step: step * corpus // per_epoch
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rows = [r for r in run.train + run.dev if r.get("words_seen") and r.get("step")]
    if not rows:
        return None
    rate = rows[-1]["words_seen"] / rows[-1]["step"]
    return lambda step: step * rate


def _curve_tasks(run: Run, backend: str) -> list[str]:
    tasks: list[str] = []
    for entry in run.series:
        tasks += [t for t in entry.get("scores", {}).get(backend, {}) if t not in tasks]
    return tasks


def _shade_phases(ax, run: Run, to_words: Callable[[int], float], low: float, shaded: set) -> None:
    for start, end, text in phase_spans(run):
        # A log axis has no 0: the first phase's span starts at the axis' left edge instead.
        left, right = max(to_words(start), low), to_words(end)
        if right > left:
            shaded.add(_kind(text))
            ax.axvspan(left, right, color=PHASE_SHADE.get(_kind(text), "#eeeeee"), zorder=0, lw=0)


def plot_learning_curves(runs: list[Run], path: Path) -> Figure:
    """Per run with a series: one panel per backend (each task's score at each checkpoint) and one of
    the dev losses, all against words seen on a log axis, checkpoints marked by dotted lines, phases
    shaded. Returns the figure (its axes' patches are the phase spans)."""
    runs = [r for r in runs if r.series]
    backends = sorted({b for r in runs for e in r.series for b in e.get("scores", {})}, key=lambda b: (b != "causal", b))
    cols = len(backends) + 1
    fig = Figure(figsize=(5.2 * cols, 1.2 + 3.6 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), cols, squeeze=False)
    shaded: set = set()
    for row, run in zip(axes, runs):
        to_words = words_of_step(run)
        marks = [e["words_seen"] for e in run.series if e.get("words_seen")]
        dev_x = [r.get("words_seen") or (to_words(r["step"]) if to_words else 0) for r in run.dev]
        positive = [x for x in marks + dev_x if x and x > 0]
        low = min(positive) / 1.5 if positive else 1.0
        final_words = (run.series_final or {}).get("words_seen") or 0
        high = max(positive + [final_words]) * 1.15
        for ax, backend in zip(row, backends + [None]):
            if to_words is not None:
                _shade_phases(ax, run, to_words, low, shaded)
            for x in marks:
                ax.axvline(x, color="0.55", ls=":", lw=0.8, zorder=1)
            if backend is None:
                for key, style in (("dev_clm_loss", "-"), ("dev_mlm_loss", "--")):
                    points = [(x, r[key]) for x, r in zip(dev_x, run.dev) if x and r.get(key) is not None]
                    if points:
                        ax.plot(*zip(*points), style, marker=".", color="0.2", lw=1.2, label=key.replace("_", " "))
                ax.set_ylabel("dev loss (nats per target token)")
                ax.set_title(f"{run.name}: dev losses", fontsize=10)
            else:
                for index, task in enumerate(_curve_tasks(run, backend)):
                    points = [(e["words_seen"], e["scores"][backend][task]) for e in run.series
                              if e.get("words_seen") and task in e.get("scores", {}).get(backend, {})]
                    ax.plot(*zip(*points), "-o", markersize=4, color=f"C{index % 10}", lw=1.3, label=task)
                    final = (run.series_final or {}).get("scores") or {}
                    value = final.get(backend, {}).get(task)
                    # The final model is comparable only when it was scored on the same (fast) sets.
                    if value is not None and run.series_final.get("eval_set") == "fast" and run.series_final.get("words_seen"):
                        ax.plot([run.series_final["words_seen"]], [value], "*", markersize=10, color=f"C{index % 10}")
                ax.set_ylabel("score (accuracy %; wug: Spearman x 100)")
                ax.set_title(f"{run.name}: {backend} scoring, fast sets", fontsize=10)
            ax.set_xscale("log")
            ax.set_xlim(low, high)
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.set_xlabel("words seen (log scale; dotted: word checkpoints)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    handles = [Patch(color=c, label=f"{k.upper()} phase") for k, c in PHASE_SHADE.items() if k in shaded]
    if handles:
        fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=len(handles))
    fig.suptitle("Learning curves: scores of the word checkpoints and dev losses against words seen")
    fig.savefig(path, dpi=DPI)
    return fig


def _curve_tables(runs: list[Run]) -> list[str]:
    lines = []
    for run in [r for r in runs if r.series]:
        final = run.series_final or {}
        for backend in sorted({b for e in run.series for b in e.get("scores", {})}, key=lambda b: (b != "causal", b)):
            tasks = _curve_tasks(run, backend)
            limit = f", first {final['limit']} items per subtask" if final.get("limit") else ""
            lines += [f"**{_md(run.name)}**, {backend} scoring{limit}:", "",
                      "| revision | words seen | step | phase | set | " + " | ".join(tasks) + " |",
                      "|---|---:|---:|---|---|" + "---:|" * len(tasks)]
            rows = [(e.get("revision"), e.get("words_seen"), e.get("step"), e.get("phase"), "fast", e.get("scores", {}))
                    for e in run.series]
            if final.get("scores"):
                last_step = run.train[-1]["step"] if run.train else None
                rows.append((final.get("revision") or "main", final.get("words_seen"), last_step, None,
                             final.get("eval_set") or "full", final["scores"]))
            for name, words, step, phase, eval_set, scores in rows:
                values = [scores.get(backend, {}).get(t) for t in tasks]
                cells = " | ".join("n/a" if v is None or v != v else f"{v:.2f}" for v in values)
                lines.append(f"| {_md(name)} | {'' if words is None else f'{words:,}'} | {'' if step is None else step} "
                             f"| {_md(phase or '')} | {eval_set} | {cells} |")
            lines.append("")
    return lines


# -------------------------------------------------------------------------------------- tables

def _stat(values: list[float], digits: int = 2) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f} (n={len(values)})"


def paired_test(base: dict[int, float], other: dict[int, float]) -> tuple[str, str, str, str, int]:
    """(base mean, other mean, mean difference other-base, p-value, pairs) as text, all over the
    seeds both conditions have, so that the difference is the difference of the two means."""
    result = paired_stats(base, other)
    if not result["n"]:
        return "n/a", "n/a", "n/a", "n/a (no shared seeds)", 0
    means = f"{result['base_mean']:.2f}", f"{result['other_mean']:.2f}", f"{result['diff']:+.2f}"
    if result["n"] < 2:
        return *means, "n/a (1 seed)", 1
    if result["p"] is None:  # zero variance: t is undefined
        return *means, "n/a (identical differences)", result["n"]
    p = result["p"]
    return *means, ("<0.001" if p < 0.001 else f"{p:.3f}"), result["n"]


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _conditions_table(conditions: list[Condition]) -> list[str]:
    lines = ["| condition | runs (seed) | final train loss CLM / MLM rows | final dev CLM loss | final dev MLM loss |",
             "|---|---|---|---|---|"]
    for cond in conditions:
        runs = ", ".join(f"{_md(r.name)} ({r.seed})" for r in cond.runs)
        last = [{_row_kind(row): row["loss"] for row in r.train} for r in cond.runs]  # the last loss of each kind
        train = " / ".join(_stat([d[o] for d in last if o in d], 3) for o in ("clm", "mlm"))
        dev = [_stat([r.dev[-1][k] for r in cond.runs if r.dev and r.dev[-1].get(k) is not None], 3)
               for k in ("dev_clm_loss", "dev_mlm_loss")]
        lines.append(f"| {_md(cond.label)} | {runs} | {train} | {dev[0]} | {dev[1]} |")
    return lines


def _score_tables(conditions: list[Condition], backends: list[str], baseline: Condition) -> list[str]:
    lines, tasks = [], shown_tasks(conditions)
    for backend in backends:
        lines += [f"### {backend} scoring", "", "| condition | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for cond in conditions:
            cells = [_stat(list(cond.per_seed(backend, t).values())) for t in tasks]
            lines.append(f"| {_md(cond.label)}{' (baseline)' if cond is baseline else ''} | " + " | ".join(cells) + " |")
        lines += ["", f"Paired t-test against the baseline **{_md(baseline.label)}** ({backend} scoring), runs paired by train.seed:", "",
                  "| condition | task | baseline mean (paired seeds) | condition mean (paired seeds) | mean difference "
                  "| p-value (paired t-test) | seed pairs |",
                  "|---|---|---|---|---|---|---|"]
        for cond in [c for c in conditions if c is not baseline]:
            for task in tasks:
                base, mine = baseline.per_seed(backend, task), cond.per_seed(backend, task)
                if not mine:  # the score table already shows n/a; a row of n/a here says nothing more
                    continue
                cells = " | ".join(map(str, paired_test(base, mine)))
                lines.append(f"| {_md(cond.label)} | {task} | {cells} |")
        if len(conditions) == 1:
            lines.append("| (only one condition: nothing to test) | | | | | | |")
        lines.append("")
    return lines


def _header(conditions: list[Condition], runs: list[Run]) -> list[str]:
    corpora = sorted({str(r.config.get("data.corpus", "?")) for r in runs})
    lines = ["# antlm report", "",
             f"{len(runs)} run(s) in {len(conditions)} condition(s). Runs are grouped into conditions by their "
             "config.yaml minus the seed and execution-only keys; different seeds of a condition are replicates.", ""]
    for corpus in corpora:
        # The folder's name only: a report is shared, the path is the machine's it ran on.
        lines.append("- **Data**: " + ("the built-in synthetic grammar corpus" if corpus == "embedded"
                                       else f"`{Path(corpus).name}` (a corpus folder)"))
    if any(SNIPPETS_MARK in c for c in corpora):
        lines.append(f"- **Data caveat**: {SNIPPETS_CAVEAT}")
    if len(corpora) > 1:
        lines.append("- **Warning**: the runs used different corpora; their scores are not directly comparable.")
    return lines + [""]


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"report output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise UserError(f"report directory {out_dir} exists and is not empty (use --force to replace the report in it)")
        # Only the report's own files go: --force must never delete what else a user keeps there.
        for name in ("report.md", CURVES) + PLOTS:
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def write_report(run_dirs: list[Path], out_dir: Path, baseline: Optional[str] = None, results_name: str = "results.json",
                 log: Callable = print, force: bool = False) -> Path:
    """Write out_dir/report.md and its PNGs for the given runs; returns the report's path.
    Everything is read and checked before anything is written."""
    if not run_dirs:
        raise UserError("no run directories given")
    paths: dict[Path, Path] = {}  # one run given twice counts once; messages name the path as given
    for given in map(Path, run_dirs):
        paths.setdefault(given.resolve(), given)
    runs = [read_run(path, results_name) for path in paths.values()]
    conditions = group_conditions(runs)
    base = conditions[0]
    if baseline is not None:
        matches = [c for c in conditions if baseline == c.label or any(baseline == r.name for r in c.runs)]
        if not matches:
            raise UserError(f"--baseline '{baseline}' matches no condition; conditions: {'; '.join(c.label for c in conditions)}")
        base = matches[0]
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, force)

    # Tokens make runs with different batch shapes comparable; steps only if a config lacks them.
    use_tokens = all(r.tokens_per_step > 0 for r in runs)
    plot_train_loss(conditions, out_dir / PLOTS[0], use_tokens)
    plot_dev_loss(conditions, out_dir / PLOTS[1], use_tokens)
    backends = [b for b in ("causal", "mlm") if any(b in r.scores for r in runs)]
    backends += sorted({b for r in runs for b in r.scores} - set(backends))
    if backends:
        plot_scores(conditions, backends, out_dir / PLOTS[2])

    lines = _header(conditions, runs)
    lines += ["## Conditions", "", *_conditions_table(conditions), "",
              "## Training loss", "", f"![training loss by objective]({PLOTS[0]})", "",
              "Each row of metrics.jsonl is the mean loss over `train.log_every` steps; CLM and MLM losses are "
              "different quantities (next-token vs masked-token) and are drawn as separate lines.", "",
              "## Dev loss", "", f"![dev loss]({PLOTS[1]})", "", "## Scores", ""]
    if backends:
        seeds = sorted({len({r.seed for r in c.runs}) for c in conditions})
        lines += [f"![scores]({PLOTS[2]})", "",
                  f"Cells: mean ± sample std over seeds (n seeds). Seeds per condition: {', '.join(map(str, seeds))}. "
                  "Each non-baseline condition is tested against the baseline with a paired t-test "
                  "(scipy.stats.ttest_rel) on per-seed scores. n seed pairs give n-1 degrees of freedom (3 seeds: 2), "
                  "so the p-values are indicative only; no correction for multiple comparisons is applied.", ""]
        lines += _score_tables(conditions, backends, base)
    else:
        lines += ["No run has evaluation results: no scores to report.", ""]
    evals = [f"- {_md(r.name)}: {e}" for r in runs for e in r.evals]
    if evals:
        lines += ["## Evaluation files", "", *evals, ""]
        if len({setting for r in runs for setting in r.settings}) > 1:
            lines += ["**Warning**: the runs were evaluated with different modes or item limits; their scores are "
                      "not directly comparable.", ""]
    if any(r.series for r in runs):
        plot_learning_curves(runs, out_dir / CURVES)
        lines += ["## Learning curves", "", f"![learning curves]({CURVES})", "",
                  "Each word checkpoint (`antlm eval --series`) scored on the 2025 fast sets, against the words seen "
                  "when it was saved (log scale); the dev losses from metrics.jsonl on the same axis; shading: the "
                  "schedule's phases. The final model is starred only when it was scored on the fast sets too.", "",
                  *_curve_tables(runs)]
    notes = [f"- {_md(r.name)}: {note}" for r in runs for note in r.notes]
    for cond in conditions:
        seeds = [r.seed for r in cond.runs]
        if len(set(seeds)) < len(seeds):
            notes.append(f"- {_md(cond.label)}: several runs share a seed; the first (by dir name) is used in scores and tests")
    if notes:
        lines += ["## Notes", "", *notes, ""]
    for note in notes:
        log(f"report: {note[2:]}")

    path = out_dir / "report.md"
    write_text(path, "\n".join(lines))  # the report appears whole or not at all
    return path
