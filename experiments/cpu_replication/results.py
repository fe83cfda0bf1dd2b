"""Assemble experiments/cpu_replication/RESULTS.md from the study's run directories and reports:
the design, the timings, every backbone's report (tables, plots, paired tests) and a conclusion
that is computed from the numbers, so that it says so when the claim does not hold."""
from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np

from antlm.report import group_conditions, paired_test, read_run

# The scoring that matches how each backbone is trained and used: the paper's comparisons.
PRIMARY_BACKEND = {"babyllama": "causal", "ltgbert": "mlm"}
CAVEAT = ("The data is a fixed sample of `../shared/data/babylm_2024_100M_snippets`, a ~7.45M-word "
          "approximation of the BabyLM 2024 corpus: not the official strict-small (10M-word) split. "
          "Scores here are not comparable with the leaderboard.")


def _verdict(diff: float, p: str) -> str:
    try:
        significant = float(p.lstrip("<")) < 0.05
    except ValueError:
        significant = False
    if not significant:
        return "no significant difference"
    return "better than the baseline" if diff > 0 else "worse than the baseline"


def conclusion(run_dirs: list[Path], backbone: str) -> list[str]:
    """One line per non-baseline condition: its macro-average (or mean of the zero-shot tasks when
    GLUE did not run) against the first condition, paired by seed."""
    runs = [read_run(d) for d in run_dirs]
    conditions = group_conditions(runs)
    base, backend = conditions[0], PRIMARY_BACKEND[backbone]
    lines = []
    for cond in conditions[1:]:
        # The macro needs GLUE on both sides (the ablations skip it): else the zero-shot mean.
        if set(base.per_seed(backend, "macro")) & set(cond.per_seed(backend, "macro")):
            base_scores, scores = base.per_seed(backend, "macro"), cond.per_seed(backend, "macro")
            what = "macro-average"
        else:
            zero_shot = ("blimp", "blimp_supplement", "ewok")
            average = lambda c: {s: float(np.mean([c.per_seed(backend, t)[s] for t in zero_shot]))  # noqa: E731
                                 for s in c.per_seed(backend, "blimp")}
            base_scores, scores, what = average(base), average(cond), "mean of BLiMP, supplement and EWoK"
        base_mean, mean, diff, p, pairs = paired_test(base_scores, scores)
        verdict = _verdict(float(diff) if diff != "n/a" else 0.0, p)
        lines.append(f"- **{cond.label}** vs **{base.label}** ({backend} scoring, {what}): {mean} vs {base_mean}, "
                     f"difference {diff}, paired t-test p = {p} over {pairs} seed pairs: **{verdict}**.")
    return lines


def _timing_lines(timings: dict) -> list[str]:
    runs = {k: v for k, v in timings.items() if isinstance(v, dict)}
    if not runs:
        return []
    lines = ["| run | train s | train + eval s |", "|---|---|---|"]
    lines += [f"| {name} | {t['train_s']:.0f} | {t['total_s']:.0f} |" for name, t in sorted(runs.items())]
    work = sum(t["total_s"] for t in runs.values())
    lines += ["", f"Sum of the per-run times: {work / 60:.1f} min of work (runs two at a time, one thread each)."]
    if "study_s" in timings:
        lines += [f"Wall time of the last invocation that ran something: {timings['study_s'] / 60:.1f} min "
                  "(runs it found finished were not redone)."]
    return lines


def write_results(out: Path, plan: dict, target: Path, design: list[str]) -> Path:
    """`plan`: study -> backbone -> run dirs. Copies each report's plots next to RESULTS.md."""
    figures = target.parent / "figures"
    lines = ["# CPU-scale replication of AntLM: results", "",
             "Written by `python experiments/cpu_replication/run.py` (main study) and `... --study ablations`; "
             "see README.md here for the design.", "", f"**Data caveat.** {CAVEAT}", "",
             f"Machine: {platform.machine()}, {platform.processor() or 'CPU'}; see timings below.", "", *design, ""]
    for study, backbones in plan.items():
        lines += [f"## {'Main comparison' if study == 'main' else 'Ablations'}", ""]
        for backbone, run_dirs in backbones.items():
            report_dir = out / study / f"report-{backbone}"
            if not (report_dir / "report.md").is_file():
                lines += [f"### {backbone}: not run yet", ""]
                continue
            lines += [f"### {backbone}", "", "**Conclusion (computed from the scores below):**", "",
                      *conclusion(run_dirs, backbone), ""]
            report = (report_dir / "report.md").read_text(encoding="utf-8")
            figures.mkdir(parents=True, exist_ok=True)
            for png in sorted(report_dir.glob("*.png")):
                name = f"{study}-{backbone}-{png.name}"
                shutil.copyfile(png, figures / name)
                report = report.replace(f"({png.name})", f"(figures/{name})")
            body = report.split("\n", 1)[1] if report.startswith("# ") else report
            lines += [body.replace("\n## ", "\n#### ").replace("\n### ", "\n##### "), ""]
        timings_path = out / study / "timings.json"
        if timings_path.is_file():
            lines += [f"### Timings ({study})", "", *_timing_lines(json.loads(timings_path.read_text())), ""]
    target.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return target
