"""OpenMP threads that spin only briefly before they sleep: CPU training on a shared CPU.

PyTorch's CPU kernels run on an OpenMP thread pool (GNU libgomp in PyTorch's Linux builds,
x86_64 and aarch64).  A thread that has done its share of a parallel region spin-waits
for the next one: libgomp spins 300,000 iterations before it sleeps.  Alone on the
machine that saves a wake-up; on a CPU shared with other busy processes (two trainings,
a camera pipeline, CI jobs) the spinning thread burns the time slice the thread it waits
for needs, and every region lasts until the scheduler happens to run all of them.

Measured on the 2-core development machine, quiet, 40 iterations of the demo's training
(``benchmarks/train_shared_cpu.py``, ``results/train_shared_cpu.json``): libgomp's default
7.0 s alone but 32-49 s each with two at once (4.6-7.2x); ``OMP_WAIT_POLICY=PASSIVE``
(sleep at once) 1.35-1.41x with two at once but 7.7 s alone (10-13 % slower);
``GOMP_SPINCOUNT=10000`` (spin briefly, then sleep) 6.9 s alone and about 2x with two at
once.  The short spin is what the training commands use: as fast as before alone, a fair
share when the CPU is shared.

The OpenMP runtime reads its settings once, when it starts (at ``import torch``), so the
training commands (``train``, ``demo``) set it before they import torch, and so does
``fcn_edge.train`` when ``train`` is first looked up before torch is loaded.  A user's
``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins; a program that imported torch first keeps
what it had.  Other OpenMP runtimes (LLVM's libomp, Intel's) ignore the variable.

Only for training: ``run``/``bench``/``eval`` keep the library default (single-frame
inference pays for each wake-up); set ``GOMP_SPINCOUNT=10000`` yourself when they share a
busy CPU.
"""

from __future__ import annotations

import os
import sys

# libgomp spin iterations before a waiting thread sleeps (its default: 300,000)
TRAINING_SPIN_COUNT = "10000"


def limit_openmp_spinning() -> bool:
    """Set ``GOMP_SPINCOUNT`` for training unless the user chose a wait policy; False when torch is loaded."""
    if "torch" in sys.modules:
        return False
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", TRAINING_SPIN_COUNT)
    return True
