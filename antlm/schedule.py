"""The AntLM schedule language, parsed into data; `objective_at(step)` is the only thing the
training loop asks.

Syntax: phases joined by `+`, each `<amount><unit>_<objective>`.
- amount: a positive number (`4`, `0.5`, `2.5`).
- unit: empty or `ep` for epochs (the paper's unit), `st` for optimizer steps, `tok`, `ktok`,
  `Mtok` for training tokens (thousands, millions).
- objective: `clm`, `mlm`, or `mix(clm=A,mlm=B)`: per-batch mixing in the ratio A:B
  (GPT-BERT uses 1:15), spread evenly over each cycle of A+B steps.
Examples: `4_clm+16_mlm+4_clm`, `24_clm`, `500st_clm+2000st_mlm`, `5Mtok_mlm`,
`6_clm+20_mix(clm=1,mlm=15)`.
Phase boundaries are whole steps: each boundary is the running total of the phases so far, rounded
half up (`cumulative`, the default), and every phase keeps at least one step. So a schedule whose
amounts sum to 10 epochs trains exactly 10 epochs of steps, and reaches its last word checkpoint,
whatever the steps per epoch. Before antlm 0.2 each phase was rounded alone (`per_phase`, the
config key `schedule_rounding`): `1.67_clm+6.66_mlm+1.67_clm` could then end a step before or after
10 epochs. The optimizer and LR schedule run across phases unchanged.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from antlm.errors import UserError

OBJECTIVES = ("clm", "mlm")
ROUNDINGS = ("cumulative", "per_phase")
# schedule_rounding came after defaults version 2: a saved config without it rounded each phase alone.
LEGACY_SCHEDULE_ROUNDING = "per_phase"
UNITS = {"": "epochs", "ep": "epochs", "st": "steps", "tok": "tokens", "ktok": "tokens", "mtok": "tokens"}
_UNIT_SCALE = {"ktok": 1e3, "mtok": 1e6}
_PHASE = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)(?P<unit>[a-zA-Z]*)_(?P<objective>.+)$")
_MIX = re.compile(r"^mix\((?P<body>[^()]*)\)$")


class ScheduleError(UserError):
    """A schedule string that does not parse; the message names the bad part."""


@dataclass(frozen=True)
class Phase:
    amount: float
    unit: str  # epochs | steps | tokens
    pattern: tuple[str, ...]  # one objective per step of the repeating cycle
    text: str

    @property
    def name(self) -> str:
        return self.text.split("_", 1)[1]


@dataclass(frozen=True)
class ResolvedPhase:
    phase: Phase
    start: int  # first step (inclusive)
    end: int  # last step (exclusive)


def _mix_pattern(body: str, part: str) -> tuple[str, ...]:
    weights: dict[str, int] = {}
    for item in body.split(","):
        if "=" not in item:
            raise ScheduleError(f"bad mix weight '{item.strip()}' in '{part}' (expected objective=integer)")
        name, value = (s.strip() for s in item.split("=", 1))
        if name not in OBJECTIVES:
            raise ScheduleError(f"unknown objective '{name}' in '{part}' (expected clm or mlm)")
        if not value.isdigit() or int(value) <= 0:
            raise ScheduleError(f"mix weight '{name}={value}' in '{part}' must be a positive integer")
        if name in weights:
            raise ScheduleError(f"objective '{name}' given twice in '{part}'")
        weights[name] = int(value)
    cycle = sum(weights.values())
    # Largest-lag order: at each slot pick the objective furthest behind its share, which spreads
    # the minority objective evenly instead of bunching it at the cycle start.
    counts = {name: 0 for name in weights}
    pattern = []
    for slot in range(1, cycle + 1):
        name = max(weights, key=lambda n: (weights[n] * slot / cycle - counts[n], n == "clm"))
        counts[name] += 1
        pattern.append(name)
    return tuple(pattern)


def parse_schedule(text: str) -> list[Phase]:
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("schedule is empty (expected e.g. '4_clm+16_mlm+4_clm')")
    phases = []
    for part in (p.strip() for p in text.replace(" ", "").split("+")):
        if not part:
            raise ScheduleError(f"empty phase in schedule '{text}' (two '+' in a row?)")
        match = _PHASE.match(part)
        if not match:
            raise ScheduleError(f"bad schedule phase '{part}' (expected <amount>[unit]_<objective>, e.g. 4_clm)")
        unit_key = match["unit"].lower()
        if unit_key not in UNITS:
            raise ScheduleError(f"unknown unit '{match['unit']}' in phase '{part}' (use ep, st, tok, ktok or Mtok)")
        amount = float(match["amount"]) * _UNIT_SCALE.get(unit_key, 1.0)
        if amount <= 0:
            raise ScheduleError(f"phase '{part}' has zero length")
        objective = match["objective"].lower()
        if objective in OBJECTIVES:
            pattern: tuple[str, ...] = (objective,)
        elif (mix := _MIX.match(objective)) is not None:
            pattern = _mix_pattern(mix["body"], part)
        else:
            raise ScheduleError(f"unknown objective '{match['objective']}' in phase '{part}' (use clm, mlm or mix(clm=A,mlm=B))")
        if UNITS[unit_key] == "steps" and amount != int(amount):
            raise ScheduleError(f"phase '{part}' needs a whole number of steps")
        phases.append(Phase(amount, UNITS[unit_key], pattern, part))
    return phases


class Schedule:
    """A parsed schedule bound to a data size: phase boundaries in optimizer steps."""

    @classmethod
    def of_saved_run(cls, config: dict, steps_per_epoch: int, tokens_per_step: int) -> "Schedule":
        """The schedule a run trained with, from its saved config.yaml read as a plain dict: a
        config saved before `schedule_rounding` existed rounded each phase alone."""
        return cls(config["schedule"], steps_per_epoch, tokens_per_step,
                   config.get("schedule_rounding", LEGACY_SCHEDULE_ROUNDING))

    def __init__(self, text: str, steps_per_epoch: int, tokens_per_step: int, rounding: str = "cumulative"):
        if steps_per_epoch <= 0:
            raise ScheduleError("the corpus is too small for one batch per epoch (lower train.batch_size or data.seq_len)")
        if rounding not in ROUNDINGS:
            raise ScheduleError(f"schedule_rounding must be {' or '.join(ROUNDINGS)}, got '{rounding}'")
        self.text = text
        self.steps_per_epoch = steps_per_epoch
        self.tokens_per_step = tokens_per_step
        self.phases: list[ResolvedPhase] = []
        step, exact = 0, 0.0  # exact: the unrounded running total, in steps
        for phase in parse_schedule(text):
            per_unit = {"epochs": steps_per_epoch, "steps": 1, "tokens": 1 / tokens_per_step}[phase.unit]
            exact += phase.amount * per_unit
            if rounding == "cumulative":
                end = max(step + 1, int(math.floor(exact + 0.5)))
            else:
                end = step + max(1, int(math.floor(phase.amount * per_unit + 0.5)))
            self.phases.append(ResolvedPhase(phase, step, end))
            step = end
        self.total_steps = step

    def phase_index(self, step: int) -> int:
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside schedule of {self.total_steps} steps")
        for index, resolved in enumerate(self.phases):
            if step < resolved.end:
                return index
        raise AssertionError("unreachable")

    def objective_at(self, step: int) -> str:
        resolved = self.phases[self.phase_index(step)]
        pattern = resolved.phase.pattern
        return pattern[(step - resolved.start) % len(pattern)]

    def describe(self) -> str:
        return ", ".join(f"{r.phase.text}: steps {r.start}-{r.end - 1}" for r in self.phases)
