"""The 2024 submission: every task and subtask key when the predictions are complete, and the
missing ones named otherwise (as collect_results.py's verify_dict would reject them)."""
import pytest

from antlm.eval.submission2024 import (BLIMP_2024, EWOK_2024, GLUE_2024, SUPPLEMENT_2024, TEXT_TASKS_2024,
                                       build_submission_2024, expected_counts_2024, missing_2024)
from conftest import SHARED_DATA


def zero_shot(n: int = 3, drop: tuple = ()) -> dict:
    """Predictions as antlm's runner returns them: {task: {subtask: {"predictions": [...]}}}."""
    out = {}
    for task, names in (("blimp", BLIMP_2024), ("blimp_supplement", SUPPLEMENT_2024), ("ewok", EWOK_2024)):
        out[task] = {name: {"predictions": [{"id": f"{name}_{i}", "pred": f"sentence {i}"} for i in range(n)]}
                     for name in names if name not in drop}
    return out


def glue_entries(n: int = 4, drop: tuple = ()) -> dict:
    entries = {name: {"status": "ok", "score": 50.0,
                      "predictions": [{"id": f"{name}_{i}", "pred": i % 2} for i in range(n)]}
               for name in GLUE_2024 if name not in drop}
    entries.update({name: {"status": "not_run", "reason": "no training data"} for name in drop})
    return entries


def test_complete_predictions_give_every_key():
    submission = build_submission_2024(zero_shot(), glue_entries())
    assert list(submission) == ["glue", "blimp", "blimp_supplement", "ewok"]
    assert {task: tuple(submission[task]) for task in submission} == {
        "glue": GLUE_2024, "blimp": BLIMP_2024, "blimp_supplement": SUPPLEMENT_2024, "ewok": EWOK_2024}
    assert len(BLIMP_2024) == 67 and len(GLUE_2024) == 11 and "mnli-mm" in submission["glue"]
    assert missing_2024(submission) == []
    assert submission["glue"]["mnli-mm"]["predictions"][1] == {"id": "mnli-mm_1", "pred": 1}
    counts = {task: {name: (4 if task == "glue" else 3) for name in names} for task, names in TEXT_TASKS_2024.items()}
    assert missing_2024(submission, counts) == []


def test_missing_tasks_subtasks_and_bad_predictions_are_named():
    submission = build_submission_2024(zero_shot(drop=("wh_island", "hypernym")),
                                       glue_entries(drop=("sst2", "qnli", "boolq", "multirc")))
    problems = missing_2024(submission)
    assert problems == ["glue/sst2: not present", "glue/qnli: not present", "glue/boolq: not present",
                        "glue/multirc: not present", "blimp/wh_island: not present",
                        "blimp_supplement/hypernym: not present"]
    submission["glue"]["rte"]["predictions"][0]["pred"] = "1"
    submission["ewok"]["social-relations"]["predictions"] = []
    submission["blimp"]["passive_1"]["predictions"][2]["id"] = "passive_1_7"
    del submission["blimp_supplement"]
    counts = {"glue": {"cola": 5}}
    problems = missing_2024(submission, counts)
    assert "glue/rte: predictions should be ints" in problems
    assert "ewok/social-relations: no predictions" in problems
    assert "blimp/passive_1: ids should be passive_1_0 .. passive_1_2 in order" in problems
    assert "blimp_supplement: not present" in problems
    assert "glue/cola: 4 predictions, the data has 5" in problems and "glue/sst2: not present" in problems


def test_unknown_subtasks_are_left_out():
    given = zero_shot()
    given["blimp"]["not_a_paradigm"] = {"predictions": [{"id": "not_a_paradigm_0", "pred": "x"}]}
    submission = build_submission_2024(given, {**glue_entries(), "stsb": {"predictions": []}})
    assert "not_a_paradigm" not in submission["blimp"] and "stsb" not in submission["glue"]


@pytest.mark.skipif(not (SHARED_DATA / "blimp_filtered").is_dir(),
                    reason=f"real evaluation data not found at {SHARED_DATA} (set ANTLM_SHARED_DATA)")
def test_expected_counts_from_the_shared_data():
    counts = expected_counts_2024(SHARED_DATA)
    assert tuple(sorted(counts["blimp"])) == tuple(sorted(BLIMP_2024)) and sum(counts["blimp"].values()) == 59875
    assert counts["blimp_supplement"]["hypernym"] == 842 and sum(counts["ewok"].values()) == 7618
    assert counts["glue"] == {"cola": 522, "sst2": 436, "mrpc": 204, "qqp": 20215, "mnli": 4908, "mnli-mm": 4916,
                              "qnli": 2732, "rte": 139, "boolq": 1635, "multirc": 2424, "wsc": 52}
    # A synthetic complete prediction set of the real sizes passes; GLUE-less, it names the 11 scores.
    full = {task: {name: {"predictions": [{"id": f"{name}_{i}", "pred": 0 if task == "glue" else "s"}
                                          for i in range(n)]} for name, n in names.items()}
            for task, names in counts.items()}
    assert missing_2024(build_submission_2024(full, full["glue"]), counts) == []
    assert missing_2024(build_submission_2024(full, {}), counts) == [f"glue/{name}: not present" for name in GLUE_2024]
