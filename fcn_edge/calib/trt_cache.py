"""TensorRT's calibration cache (the implicit INT8 calibrator's text format), written from our ranges.

The format, as TensorRT writes it and as NVIDIA's own tools produce it (the
``qdq-translator`` of NVIDIA/Deep-Learning-Accelerator-SW, ``tools/qdq-translator/utils.py``,
which turns Q/DQ scales into a cache for DLA builds with ``trtexec --calib``)::

    TRT-8502-EntropyCalibration2
    relu_1: 3c8b4396
    max_pool2d: 3d0e2a11
    ...

* line 1: ``TRT-<NV_TENSORRT_VERSION>-<algorithm>``; the version is TensorRT's integer
  version (8.5.2 -> 8502, 10.3.0 -> 100300) and the algorithm names the calibrator
  class that may replay the cache (``EntropyCalibration2`` -> IInt8EntropyCalibrator2,
  ``MinMaxCalibration`` -> IInt8MinMaxCalibrator);
* then one ``<tensor name>: <hex>`` line per tensor, where ``<hex>`` is the IEEE-754
  bit pattern of the float32 *scale* written as a big-endian hex integer, and
  ``scale = amax / 127`` (symmetric INT8: the same scale a Q/DQ pair with that range uses).

Tensor names are the ONNX tensor names: TensorRT's ONNX parser names each network
tensor after the ONNX value it comes from, so the cache applies to the FP32 ONNX the
ranges were measured on.  Only the tensors of the quantized region are listed: a
tensor without a scale makes TensorRT keep the layers reading or writing it out of
INT8, which is how the pre/post-processing and ``--keep-float`` layers stay float on the
implicit path too.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from fcn_edge.calib.config import parse_trt_version_number
from fcn_edge.errors import ArtifactError
from fcn_edge.fileio import atomic_write_text, require_file

INT8_MAX = 127.0
ALGORITHMS = {"entropy": "EntropyCalibration2", "percentile": "EntropyCalibration2", "max": "MinMaxCalibration"}
_HEADER = re.compile(r"TRT-(\d+)-(\w+)")


def scale_to_hex(scale: float) -> str:
    """The cache's spelling of a float32 scale: its bit pattern, big-endian hex, 8 digits."""
    return struct.pack(">f", float(scale)).hex()


def hex_to_scale(text: str) -> float:
    value = int(text, 16)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{text!r} is not a 32-bit hex value")
    return struct.unpack(">f", value.to_bytes(4, "big"))[0]


def cache_text(amax: Mapping[str, float], *, trt_version: str, method: str) -> str:
    """The whole cache file for ``{tensor: amax}`` (scales are ``amax / 127``; a zero range gets the smallest scale)."""
    header = f"TRT-{parse_trt_version_number(trt_version)}-{ALGORITHMS[method]}"
    lines = [header]
    for name, value in amax.items():
        if "\n" in name or not name.strip():
            raise ArtifactError(f"tensor name {name!r} cannot be written to a calibration cache")
        scale = max(float(value), 0.0) / INT8_MAX
        if scale == 0.0:
            scale = float.fromhex("0x1p-126")  # a tensor that was always 0: any positive scale is exact
        lines.append(f"{name}: {scale_to_hex(scale)}")
    return "\n".join(lines) + "\n"


def write_cache(path: str | Path, amax: Mapping[str, float], *, trt_version: str, method: str) -> Path:
    return atomic_write_text(path, cache_text(amax, trt_version=trt_version, method=method))


@dataclass
class CalibrationCache:
    version: int
    algorithm: str
    scales: dict[str, float]


def read_cache(path: str | Path) -> CalibrationCache:
    """Parse a TensorRT calibration cache (ours or TensorRT's); ArtifactError naming the bad line.

    The one parser of the format: build-engine reads a ``--calib-cache`` through it too.
    """
    path = require_file(path, "calibration cache", ArtifactError)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ArtifactError(f"{path} is not a TensorRT calibration cache (not text)") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read calibration cache {path}: {exc}") from None
    header = lines[0].strip() if lines else ""
    match = _HEADER.fullmatch(header)
    if not match:
        raise ArtifactError(f"{path} is not a TensorRT calibration cache: its first line should look like "
                            f"'TRT-8502-EntropyCalibration2', not {header[:60]!r}")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{1,8}", value.strip()):
            raise ArtifactError(f"{path} line {number} is not 'tensor: hex' ({line[:60]!r})")
        scales[name.strip()] = hex_to_scale(value.strip())
    if not scales:
        raise ArtifactError(f"{path} has a header but no tensor scales")
    return CalibrationCache(int(match.group(1)), match.group(2), scales)
