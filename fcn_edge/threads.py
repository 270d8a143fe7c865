"""OpenMP threads that sleep instead of spinning while they wait: CPU training on a shared CPU.

PyTorch's CPU kernels run on an OpenMP thread pool.  By default a thread that has done
its share of a parallel region spin-waits for the next one (GNU libgomp spins a few
hundred thousand iterations, Intel's runtime 200 ms).  Alone on the machine that saves
a wake-up; on a CPU shared with other busy processes (two trainings, a camera
pipeline, CI jobs) the spinning thread burns the time slice the thread it waits for
needs, and every region lasts until the scheduler happens to run all of them.  On the
2-core development machine shared with other work, 40 iterations of the demo's
training took 229 s with spinning and 14 s with sleeping threads
(``benchmarks/train_shared_cpu.py``, ``results/train_shared_cpu.json``: 42 s vs 10 s alone,
78 s vs 23 s two at once, under the same background load).

``OMP_WAIT_POLICY=PASSIVE`` makes them sleep.  The OpenMP runtime reads it once, when
it starts (at ``import torch``), so the training commands (``train``, ``demo``) set it
before they import torch, and so does ``fcn_edge.train`` when ``train`` is first looked
up before torch is loaded.  A value already in the environment wins; a program that
imported torch first keeps what it had.

Only for training: single-frame inference with the PyTorch backend pays for the wake-ups
(a width-1/8 FCN-8s at 128x128: 7.3 ms p50 spinning vs 10-12 ms sleeping on a lightly
loaded machine), although spinning swung from 7 to 34 ms as other processes came and
went, while sleeping stayed at 10-12 ms.  ``run``/``bench``/``eval`` keep the library
default; set ``OMP_WAIT_POLICY=PASSIVE`` yourself when they share a busy CPU.
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
