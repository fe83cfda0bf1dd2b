"""An exponential moving average of the weights (train.ema_decay), as GPT-BERT keeps one
(ltgoslo/gpt-bert pretraining/train_10m.py): after every optimizer update,
ema = decay * ema + (1 - decay) * w, written as the reference writes it. The average is what dev
losses, word checkpoints and final/ are computed with; the raw weights keep training, and a
checkpoint holds both, so a resumed run continues the same average."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch

PREFIX = "ema."


class WeightEma:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]  # a tied weight once
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, skipped: Optional[torch.Tensor] = None) -> None:
        """`skipped` (a bool tensor on the device) leaves the average unchanged without a host sync,
        for optimizers that skip a non-finite step on the device."""
        decay = self.decay if skipped is None else torch.where(skipped, 1.0, self.decay).to(self.shadow[0].device)
        torch._foreach_mul_(self.shadow, decay)
        torch._foreach_add_(self.shadow, torch._foreach_mul(self.params, 1.0 - decay))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + name: t.detach().cpu().contiguous() for name, t in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        missing = [name for name in self.names if PREFIX + name not in tensors]
        if missing:
            raise KeyError(f"the checkpoint holds no EMA weights for {missing[0]} (was it written with train.ema_decay=0?)")
        for name, t in zip(self.names, self.shadow):
            t.copy_(tensors[PREFIX + name])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own (bitwise) after it."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for p, t in zip(self.params, self.shadow):
                p.copy_(t)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, t in zip(self.params, saved):
                    p.copy_(t)
