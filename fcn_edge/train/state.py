"""Random-number state for exact resumption, as plain data a weights-only load accepts.

Python's and numpy's generator states become lists of ints, torch's stay uint8
tensors: ``torch.load(weights_only=True)`` refuses numpy arrays and arbitrary objects,
and a checkpoint must never need anything else to load.  Each process of a
distributed run has its own state (dropout draws differ per rank); all of them are
stored, in rank order.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) generator states as plain data."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss": gauss},
        "numpy": {"kind": str(kind), "keys": [int(v) for v in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Put back what :func:`capture_rng` recorded."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    if device is not None and device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)


def to_plain(value: Any) -> Any:
    """``value`` with only what a weights-only load accepts: dict/list/str/int/float/bool/None/tensors.

    str and number subclasses (``torch.__version__`` is a TorchVersion), numpy scalars,
    tuples and paths are converted; anything else is refused here rather than making
    the checkpoint unloadable later.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        return {(k if type(k) in (int, str) else str(k)): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")
