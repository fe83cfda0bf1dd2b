"""CPU thread behaviour that holds up on a shared machine.

After a parallel region, GNU OpenMP (the runtime torch's CPU wheels use) keeps its worker threads
spinning for a while before they sleep. On a machine where another process holds a core, a spinning
thread takes the time slice its sibling needs, and every region then waits for the slowest thread:
on 2 cores with one other CPU-bound process, 2 threads ran the `tiny` preset 7x slower than with
`OMP_WAIT_POLICY=PASSIVE` (docs/performance.md has the figures, busy and quiet). The runtime reads
the variable once, when torch loads it, so antlm sets it on import, before torch, and never over a
value the user chose. Importing torch before antlm leaves the runtime's own policy in force.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

DEFAULT_WAIT_POLICY = "PASSIVE"


def apply_wait_policy() -> Optional[str]:
    """Set OMP_WAIT_POLICY to PASSIVE unless the user set it or torch is already loaded; returns the
    policy in force for this process (None: the OpenMP runtime's own default)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"]
    if "torch" in sys.modules:  # the runtime has read its environment already
        return None
    os.environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    return DEFAULT_WAIT_POLICY
