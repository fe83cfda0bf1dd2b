"""Dev loss of both objectives, logged whatever the phase: the curve a reader compares runs by."""
from __future__ import annotations

import numpy as np
import torch

from antlm.config_types import RunConfig
from antlm.data.batches import BatchMaker
from antlm.data.tokens import BlockDataset
from antlm.objectives import loss_sum

DEV_MASK_SEED = 1234


@torch.no_grad()
def dev_losses(model, maker: BatchMaker, dev: BlockDataset, cfg: RunConfig, device, autocast) -> dict:
    """Dev loss of BOTH objectives on fixed blocks and fixed masks, whatever the phase."""
    if len(dev) == 0:
        return {}
    was_training = model.training
    model.eval()
    batch_size = min(cfg.train.micro_batch_size or cfg.train.batch_size, len(dev))
    n_batches = max(1, min(cfg.train.eval_batches, len(dev) // batch_size))
    # Spread the evaluated blocks over the whole dev set: corpus files are concatenated in order,
    # so the first blocks would all come from one source.
    spread = np.linspace(0, len(dev) - 1, n_batches * batch_size).round().astype(np.int64)
    result = {}
    for objective in ("clm", "mlm"):
        total, count = 0.0, 0
        for i in range(n_batches):
            positions = spread[i * batch_size:(i + 1) * batch_size]
            batch = maker.make(positions, objective, DEV_MASK_SEED + i, step=0).to(device)
            with autocast():
                total += loss_sum(model, batch).item()
            count += batch.num_targets
        result[f"dev_{objective}_loss"] = round(total / max(1, count), 5)
    model.train(was_training)
    return result
