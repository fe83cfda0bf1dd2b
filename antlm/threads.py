"""CPU thread behaviour that holds up on a shared machine and costs nothing on a quiet one.

After a parallel region, GNU OpenMP (the runtime torch's CPU wheels use on Linux) keeps its worker
threads spinning for about 3 ms before they sleep. Where another process holds a core, a spinning
thread takes the time slice its sibling needs and every region waits for the slowest thread: the
`tiny` preset on 2 threads beside other busy processes ran 2-7x slower than with threads that sleep
at once (`OMP_WAIT_POLICY=PASSIVE`). On a quiet machine, sleeping at once costs 7-18% (a woken
thread starts late), while a short spin (`GOMP_SPINCOUNT=2000`, about 20 microseconds) is as fast as
the runtime's default. No one setting wins both (docs/performance.md, benchmarks/wait_policy.py), so
antlm looks at the machine when it is imported: another process running on a core means PASSIVE, a
quiet machine the short spin. The runtime reads these variables once, when torch loads it, so this
runs on import, before torch, and never over a variable the user set. Importing torch before antlm
leaves the runtime's own behaviour in force.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

SPIN_COUNT = "2000"
USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def busy_cores(samples: int = 3, interval: float = 0.005) -> int:
    """Threads of other processes running or waiting for a core right now: the kernel's count of
    runnable threads less this one, the least of a few samples (a shell or a daemon that runs for a
    moment drops out; a CPU-bound job is runnable in every sample). Not the load average: it still
    counts, for a minute, a job that has just ended, such as the previous run of a script."""
    counts = []
    for index in range(samples):
        if index:
            time.sleep(interval)
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):  # not Linux: libgomp's variables do not apply anyway
            return 0
    return max(0, min(counts))


def choose_wait(busy: int) -> dict:
    """The OpenMP variables for a machine where `busy` threads of other processes want a core."""
    return {"OMP_WAIT_POLICY": "PASSIVE"} if busy > 0 else {"GOMP_SPINCOUNT": SPIN_COUNT}


def apply_wait_policy() -> Optional[str]:
    """Set the OpenMP wait variables (choose_wait) unless the user set either or torch is already
    loaded; returns what is in force for this process as `NAME=value` (None: the runtime's default)."""
    chosen = [f"{name}={os.environ[name]}" for name in USER_VARIABLES if name in os.environ]
    if chosen:
        return " ".join(chosen)
    if "torch" in sys.modules:  # the runtime has read its environment already
        return None
    settings = choose_wait(busy_cores())
    os.environ.update(settings)
    return " ".join(f"{k}={v}" for k, v in settings.items())
