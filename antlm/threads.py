"""CPU thread behaviour that holds up on a shared machine and costs nothing on a quiet one.

After a parallel region, GNU OpenMP (the runtime torch's CPU wheels use on Linux) keeps its worker
threads spinning for about 3 ms before they sleep. On a machine where another process holds a core,
a spinning thread takes the time slice its sibling needs, and every region then waits for the
slowest thread: on 2 cores with one other CPU-bound process, 2 threads ran the `tiny` preset 7x
slower than with `OMP_WAIT_POLICY=PASSIVE`. Sleeping at once costs a quiet machine 10-25% on small
models (a woken thread starts late). A short spin, `GOMP_SPINCOUNT=SPIN_COUNT` (about 0.1 ms), keeps
the quiet machine's speed and the busy machine's robustness (docs/performance.md, the figures of
benchmarks/wait_policy.py). The runtime reads these variables once, when torch loads it, so antlm
sets the spin count on import, before torch, and never when the user chose either variable.
Importing torch before antlm leaves the runtime's own behaviour in force.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

SPIN_COUNT = "10000"
USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def apply_wait_policy() -> Optional[str]:
    """Set GOMP_SPINCOUNT to SPIN_COUNT unless the user set it or OMP_WAIT_POLICY, or torch is
    already loaded; returns the setting in force for this process, as `NAME=value` (None: the
    OpenMP runtime's own default)."""
    chosen = [f"{name}={os.environ[name]}" for name in USER_VARIABLES if name in os.environ]
    if chosen:
        return " ".join(chosen)
    if "torch" in sys.modules:  # the runtime has read its environment already
        return None
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return f"GOMP_SPINCOUNT={SPIN_COUNT}"
