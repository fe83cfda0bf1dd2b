"""Golden losses: the first logged losses of the `tiny` preset (fixed seed, CPU, one thread) are
pinned, so a change that alters the numerics of training (initialisation order, batch or mask
drawing, the loss, the optimizer, the learning rate) fails here loudly instead of drifting.

The values were logged by the code before the issue-22 refactor. A deliberate change of numerics
regenerates them: run each case below and copy `loss` from metrics.jsonl, and say why in CHANGELOG.md.
"""
from __future__ import annotations

import json

import pytest
import torch

from antlm.config import build_config
from antlm.train.loop import train

torch.set_num_threads(1)

# The first 8 steps of the preset (its schedule starts with 1 epoch of CLM), and of the preset's
# model and data with an AntLM switch inside those 8 steps, for each backbone. metrics.jsonl rounds
# losses to 5 decimals; the bound, 1e-4, is ten rounding steps, far below what a changed draw or
# init moves a loss (1e-2 and more) and above the few ulps another CPU's kernels may give.
GOLDEN = {
    "tiny": ([], [6.40077, 6.33443, 6.25673, 6.16469, 6.09781, 6.01476, 5.94369, 5.89691], (5.83211, 5.89358)),
    "babyllama-antlm": (["schedule=4st_clm+4st_mlm"],
                        [6.40077, 6.13425, 5.8581, 5.69758, 5.66608, 5.5713, 5.58274, 5.55329], (5.47254, 5.48549)),
    "ltgbert-antlm": (["schedule=4st_clm+4st_mlm", "model.backbone=ltgbert"],
                      [6.54728, 6.08537, 5.71932, 5.50243, 5.77195, 5.65458, 5.57177, 5.52822], (5.20923, 5.49518)),
    "gptbert-antlm": (["schedule=4st_clm+4st_mlm", "model.backbone=gptbert"],
                      [6.5395, 5.92836, 5.46227, 5.16291, 5.63943, 5.52116, 5.35835, 5.41165], (4.86196, 5.34872)),
}
TOLERANCE = 1e-4


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_first_losses_of_the_tiny_preset_are_pinned(tmp_path, case):
    extra, train_losses, (dev_clm, dev_mlm) = GOLDEN[case]
    overrides = ["train.max_steps=8", "train.log_every=1", "train.eval_every=8", "train.checkpoint_every=1000",
                 "train.progress=false", *extra]
    train(build_config("tiny", overrides), tmp_path / "run", log=lambda message: None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [row["loss"] for row in rows if row["split"] == "train"]
    assert [row["step"] for row in rows if row["split"] == "train"] == list(range(1, 9))
    assert logged == pytest.approx(train_losses, abs=TOLERANCE), f"{case}: training numerics changed"
    dev = [row for row in rows if row["split"] == "dev"][-1]
    assert (dev["dev_clm_loss"], dev["dev_mlm_loss"]) == pytest.approx((dev_clm, dev_mlm), abs=TOLERANCE)
