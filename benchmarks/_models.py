"""The benchmarks' fixed models: random-weight FCN-8s exports, made in a child process.

Exported by the project's own exporter (``tests/onnx_models.export_random_model``) in a
child process so torch never enters the measuring one: speed and memory figures are
those of the on-device side (numpy, OpenCV, ONNX Runtime).  Speed does not depend on
the weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]

# argv: ModelInfo JSON, then [[path, export options], ...] as JSON (lists become tuples again)
_CHILD = ("import json, sys; from fcn_edge.artifacts.modelinfo import ModelInfo; "
          "from tests.onnx_models import export_random_model; info = ModelInfo.from_json(sys.argv[1]); "
          "[export_random_model(path, info, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}) "
          "for path, options in json.loads(sys.argv[2])]")


def child_env() -> dict:
    """The environment for fcn-edge child processes of a benchmark: this checkout first, no progress bars."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("FCN_EDGE_PROGRESS", "0")
    return env


def fcn8s_info(width: float, size: tuple[int, int], classes: int):
    """The benchmarks' model description: FCN-8s, aligned geometry, ``width`` channels, ``size`` input."""
    from fcn_edge.artifacts.modelinfo import ModelInfo

    return ModelInfo(arch="fcn8s", num_classes=classes, geometry="aligned", width=width, input_size=size)


def export_random_models(info, exports: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """Export ``info``'s random-weight model once per ``(path, ExportConfig options)``, in one child process."""
    plan = json.dumps([[str(path), options] for path, options in exports])
    subprocess.run([sys.executable, "-c", _CHILD, info.to_json(), plan], check=True, env=child_env())
