"""OpenMP threads that sleep instead of spinning while they wait: CPU training on a shared CPU.

PyTorch's CPU kernels run on an OpenMP thread pool.  By default a thread that has done
its share of a parallel region spin-waits for the next one (GNU libgomp spins a few
hundred thousand iterations, Intel's runtime 200 ms).  Alone on the machine that saves
a wake-up; on a CPU shared with other busy processes (two trainings, a camera
pipeline, CI jobs) the spinning thread burns the time slice the thread it waits for
needs, and every region lasts until the scheduler happens to run all of them.  On the
2-core development machine shared with other work, 40 iterations of the demo's
training took 229 s with spinning and 14 s with sleeping threads
(``benchmarks/train_shared_cpu.py``, ``results/train_shared_cpu.json``).

``OMP_WAIT_POLICY=PASSIVE`` makes them sleep.  The OpenMP runtime reads it once, when
it starts (at ``import torch``), so the command line sets it first thing and
``fcn_edge.train`` sets it when it is imported before torch.  A value already in the
environment wins; a program that imported torch first keeps what it had.
"""

from __future__ import annotations

import os
import sys


def prefer_sleeping_openmp_threads() -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set already; False when torch is loaded (too late to matter)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
