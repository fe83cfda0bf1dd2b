"""`data.length_schedule`: longer blocks late in a run, as LTG-BERT (128 -> 512 for the last 10% of
steps) and GPT-BERT (128 -> 256 at 70%, -> 512 at 90%) train.

The text is `LEN@FRACTION[,LEN@FRACTION...]`. A stage starts at step int(FRACTION * total steps),
LTG-BERT's rule (babylm/train/train.py: `global_step == int(args.device_max_steps * args.long_after)`
ends the short-sequence epoch, and the steps from there on read the 512-token data). Kept free of
torch so the config can check it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class LengthScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class LengthStage:
    seq_len: int
    fraction: float  # of the run's steps before the stage starts (0 for the first stage)

    def start(self, total_steps: int) -> int:
        return int(total_steps * self.fraction)


def parse_length_schedule(text: Optional[str], base_seq_len: int) -> list[LengthStage]:
    """The stages, the first one `base_seq_len` from step 0. Raises LengthScheduleError on a part
    that is not LEN@FRACTION, lengths that do not grow in multiples of the base length, or
    fractions not increasing inside (0, 1)."""
    stages = [LengthStage(base_seq_len, 0.0)]
    if text is None or not str(text).strip():
        return stages
    for part in str(text).split(","):
        length, at, fraction = part.strip().partition("@")
        try:
            stage = LengthStage(int(length), float(fraction))
        except ValueError:
            raise LengthScheduleError(f"data.length_schedule: '{part.strip()}' is not LEN@FRACTION (e.g. 512@0.9)") from None
        if not at:
            raise LengthScheduleError(f"data.length_schedule: '{part.strip()}' is not LEN@FRACTION (e.g. 512@0.9)")
        previous = stages[-1]
        if stage.seq_len <= previous.seq_len or stage.seq_len % base_seq_len:
            raise LengthScheduleError(f"data.length_schedule: {stage.seq_len} must be longer than {previous.seq_len} "
                                      f"and a multiple of data.seq_len ({base_seq_len})")
        if not previous.fraction < stage.fraction < 1:
            raise LengthScheduleError(f"data.length_schedule: fractions must increase inside (0, 1), got {part.strip()}")
        stages.append(stage)
    return stages
