"""Each scoring pipeline owns its rules: no code outside `antlm/eval/pipelines/` branches on a
pipeline's name (a new pipeline is a new module there, not new branches elsewhere)."""
import re

from conftest import REPO

PIPELINE_NAMES = ("babylm2024", "babylm2025", "clean")
BRANCH = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](%s)["']""" % "|".join(PIPELINE_NAMES))


def test_no_branch_on_a_pipeline_name_outside_the_pipelines():
    offenders = []
    for path in sorted((REPO / "antlm").rglob("*.py")):
        if "pipelines" in path.relative_to(REPO / "antlm").parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if BRANCH.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_a_branch():
    assert BRANCH.search('if pipeline.name == "babylm2025":') and BRANCH.search("mode != 'clean'")
    assert not BRANCH.search('name="babylm2025",')
