"""Bytes per frame from the declared I/O: frames/labels vs raw float input/logits at 512x512, 21 classes."""

from __future__ import annotations

import pytest

from fcn_edge.bench.io_bytes import format_megabytes, io_bytes_per_frame
from fcn_edge.runtime.base import IOSpec, TensorSpec

SIZE = (512, 512)
CLASSES = 21


def frames_io(static: bool, label_dtype: str = "uint8") -> IOSpec:
    n, h, w = (1, 512, 512) if static else (None, None, None)
    return IOSpec("frames", TensorSpec("frames", "uint8", (n, h, w, 3), "NHWC"),
                  (TensorSpec("labels", label_dtype, (n, h, w), "NHW"),), size=SIZE if static else None,
                  batch=1 if static else None)


def raw_io(static: bool) -> IOSpec:
    n, h, w = (1, 512, 512) if static else (None, None, None)
    return IOSpec("raw", TensorSpec("input", "float32", (n, 3, h, w), "NCHW"),
                  (TensorSpec("logits", "float32", (n, CLASSES if static else None, h, w), "NCHW"),),
                  size=SIZE if static else None, batch=1 if static else None)


@pytest.mark.parametrize("static", [True, False], ids=["static (ONNX export)", "dynamic (PyTorch runner)"])
def test_frames_in_labels_out_moves_a_twenty_fourth_of_raw_io(static):
    frames = io_bytes_per_frame(frames_io(static), SIZE, CLASSES)
    raw = io_bytes_per_frame(raw_io(static), SIZE, CLASSES)
    assert frames["in"] == 512 * 512 * 3 == 786_432
    assert frames["out"] == 512 * 512 == 262_144
    assert frames["input"] == {"frames": 786_432} and frames["outputs"] == {"labels": 262_144}
    assert raw["in"] == 3 * 512 * 512 * 4 == 3_145_728
    assert raw["out"] == 21 * 512 * 512 * 4 == 22_020_096
    assert [format_megabytes(v) for v in (frames["in"], frames["out"], raw["in"], raw["out"])] == \
        ["0.79 MB", "0.26 MB", "3.15 MB", "22.02 MB"]
    assert raw["total"] / frames["total"] == pytest.approx(24.0, rel=0.01)


def test_engine_labels_without_a_cast_cost_eight_bytes_per_pixel_and_extra_outputs_count():
    io = frames_io(False, label_dtype="int64")  # TensorRT 10 ArgMax left uncast
    assert io_bytes_per_frame(io, SIZE, CLASSES)["out"] == 512 * 512 * 8
    two = IOSpec("frames", io.input, (TensorSpec("labels", "uint8", (None, None, None), "NHW"),
                                      TensorSpec("confidence", "uint8", (None, None, None), "NHW")))
    assert io_bytes_per_frame(two, (100, 200), CLASSES)["outputs"] == {"labels": 20_000, "confidence": 20_000}


def test_unknown_dynamic_dimension_is_an_error_not_a_guess():
    odd = IOSpec("frames", TensorSpec("frames", "uint8", (None, None, None, 3), "NHWC"),
                 (TensorSpec("mystery", "float32", (None, None, None, None, None), ""),))
    with pytest.raises(ValueError, match="mystery"):
        io_bytes_per_frame(odd, SIZE, CLASSES)
