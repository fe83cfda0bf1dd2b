"""The BabyLM 2024 text-only submission: `{task: {subtask: {"predictions": [{"id", "pred"}]}}}` for
glue, blimp, blimp_supplement and ewok, as `collect_results.py` writes it, and a check that mirrors
its `verify_dict` (collect_results.py:75-127 at babylm/evaluation-pipeline-2024 @ d680c28).

verify_dict asserts that every task and subtask of TEXT_TASKS (collect_results.py:7-17) is present,
that GLUE predictions are ints and zero-shot ones strings, and that each subtask has one prediction
per line of its data file. Ids are `<subtask>_<i>` in file order (collect_results.py:48-53), and
score_predictions.py pairs predictions with data lines by position.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from antlm.errors import UserError

GLUE_2024 = ("cola", "sst2", "mrpc", "qqp", "mnli", "mnli-mm", "qnli", "rte", "boolq", "multirc", "wsc")
SUPPLEMENT_2024 = ("hypernym", "qa_congruence_easy", "qa_congruence_tricky", "subject_aux_inversion", "turn_taking")
EWOK_2024 = ("agent-properties", "material-dynamics", "material-properties", "physical-dynamics",
             "physical-interactions", "physical-relations", "quantitative-properties", "social-interactions",
             "social-properties", "social-relations", "spatial-relations")
# collect_results.py lists blimp_filtered/ at run time; these are its 67 file names.
BLIMP_2024 = (
    "adjunct_island", "anaphor_gender_agreement", "anaphor_number_agreement", "animate_subject_passive",
    "animate_subject_trans", "causative", "complex_NP_island", "coordinate_structure_constraint_complex_left_branch",
    "coordinate_structure_constraint_object_extraction", "determiner_noun_agreement_1", "determiner_noun_agreement_2",
    "determiner_noun_agreement_irregular_1", "determiner_noun_agreement_irregular_2",
    "determiner_noun_agreement_with_adj_2", "determiner_noun_agreement_with_adj_irregular_1",
    "determiner_noun_agreement_with_adj_irregular_2", "determiner_noun_agreement_with_adjective_1",
    "distractor_agreement_relational_noun", "distractor_agreement_relative_clause", "drop_argument",
    "ellipsis_n_bar_1", "ellipsis_n_bar_2", "existential_there_object_raising", "existential_there_quantifiers_1",
    "existential_there_quantifiers_2", "existential_there_subject_raising", "expletive_it_object_raising",
    "inchoative", "intransitive", "irregular_past_participle_adjectives", "irregular_past_participle_verbs",
    "irregular_plural_subject_verb_agreement_1", "irregular_plural_subject_verb_agreement_2",
    "left_branch_island_echo_question", "left_branch_island_simple_question", "matrix_question_npi_licensor_present",
    "npi_present_1", "npi_present_2", "only_npi_licensor_present", "only_npi_scope", "passive_1", "passive_2",
    "principle_A_c_command", "principle_A_case_1", "principle_A_case_2", "principle_A_domain_1",
    "principle_A_domain_2", "principle_A_domain_3", "principle_A_reconstruction",
    "regular_plural_subject_verb_agreement_1", "regular_plural_subject_verb_agreement_2",
    "sentential_negation_npi_licensor_present", "sentential_negation_npi_scope", "sentential_subject_island",
    "superlative_quantifiers_1", "superlative_quantifiers_2", "tough_vs_raising_1", "tough_vs_raising_2",
    "transitive", "wh_island", "wh_questions_object_gap", "wh_questions_subject_gap",
    "wh_questions_subject_gap_long_distance", "wh_vs_that_no_gap", "wh_vs_that_no_gap_long_distance",
    "wh_vs_that_with_gap", "wh_vs_that_with_gap_long_distance",
)
TEXT_TASKS_2024 = {"glue": GLUE_2024, "blimp": BLIMP_2024, "blimp_supplement": SUPPLEMENT_2024, "ewok": EWOK_2024}
ZERO_SHOT_2024 = ("blimp", "blimp_supplement", "ewok")


def _glue_predictions(entry: dict) -> Optional[list]:
    """A run_glue entry (status ok) or a bare {"predictions": [...]}; None for a task that did not run."""
    if entry.get("status", "ok") != "ok" or "predictions" not in entry:
        return None
    return [{"id": p["id"], "pred": p["pred"]} for p in entry["predictions"]]


def build_submission_2024(zero_shot: dict, glue: dict) -> dict:
    """The submission dict from zero-shot predictions `{task: {subtask: {"predictions": [{"id", "pred": str}]}}}`
    (antlm's runner) and GLUE results `{score name: run_glue entry}` (or `{name: {"predictions": [...]}}`).

    Tasks and subtasks come in collect_results.py's order (glue, blimp, blimp_supplement, ewok);
    anything the 2024 layout does not know is left out, anything missing stays missing (see missing_2024)."""
    out: dict = {"glue": {}}
    for name in GLUE_2024:
        predictions = _glue_predictions(glue[name]) if name in glue else None
        if predictions is not None:
            out["glue"][name] = {"predictions": predictions}
    for task in ZERO_SHOT_2024:
        given = zero_shot.get(task, {})
        known = [s for s in TEXT_TASKS_2024[task] if s in given]
        out[task] = {s: {"predictions": list(given[s]["predictions"])} for s in known}
    return out


def expected_counts_2024(data_dir) -> dict[str, dict[str, int]]:
    """{task: {subtask: items}} from the evaluation data (either layout): how many predictions
    verify_dict wants for each subtask."""
    from antlm.eval import glue as glue_data
    from antlm.eval.tasks import load_task

    # Data that is not there has no count: missing_2024 then reports its task as absent, not miscounted.
    counts = {}
    for task in ZERO_SHOT_2024:
        try:
            counts[task] = {name: len(items) for name, items in load_task(Path(data_dir), task).items()}
        except UserError:
            pass
    glue_counts = {}
    for name in GLUE_2024:
        try:
            data = glue_data.load_task_data(data_dir, "mnli" if name == "mnli-mm" else name, require_validation=False)
        except UserError:
            continue
        rows = data.validation_mismatched if name == "mnli-mm" else data.validation
        if rows is not None:
            glue_counts[name] = len(rows)
    return {"glue": glue_counts, **counts}


def missing_2024(submission: dict, expected_counts: Optional[dict] = None) -> list[str]:
    """What verify_dict would reject, one line each; empty when the submission is complete.

    Without `expected_counts` the subtask names are the 2024 ones (BLIMP_2024 etc.) and counts are
    not checked; with them (expected_counts_2024), their names and counts are required."""
    problems = []
    for task, subtasks in TEXT_TASKS_2024.items():
        if task not in submission:
            problems.append(f"{task}: not present")
            continue
        wanted = list((expected_counts or {}).get(task) or subtasks)
        if task == "glue" and expected_counts is not None:
            wanted = list(GLUE_2024)  # every GLUE score is required, whether or not its data is here
        for name in wanted:
            if name not in submission[task]:
                problems.append(f"{task}/{name}: not present")
                continue
            predictions = submission[task][name].get("predictions") or []
            if not predictions:
                problems.append(f"{task}/{name}: no predictions")
                continue
            kind = int if task == "glue" else str
            if any(type(p.get("pred")) is not kind for p in predictions):
                problems.append(f"{task}/{name}: predictions should be {kind.__name__}s")
            if [p.get("id") for p in predictions] != [f"{name}_{i}" for i in range(len(predictions))]:
                problems.append(f"{task}/{name}: ids should be {name}_0 .. {name}_{len(predictions) - 1} in order")
            expected = ((expected_counts or {}).get(task) or {}).get(name)
            if expected is not None and len(predictions) != expected:
                problems.append(f"{task}/{name}: {len(predictions)} predictions, the data has {expected}")
    return problems
