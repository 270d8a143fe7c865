"""TensorRT's calibration cache: format, values = range / 127, names TensorRT will see, same scales as the Q/DQ."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fcn_edge.calib.config import CalibrationConfigError, parse_trt_version_number
from fcn_edge.calib.trt_cache import cache_text, hex_to_scale, read_cache, scale_to_hex


def test_cache_format_parses_back(default_calibration):
    lines = default_calibration.cache.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "TRT-8502-EntropyCalibration2"
    assert len(lines) > 20
    for line in lines[1:]:
        assert re.fullmatch(r"[^\s:][^\n]*: [0-9a-f]{8}", line), line


def test_cache_values_are_range_over_127(default_calibration):
    ranges = json.loads(default_calibration.ranges_json.read_text())
    cache = read_cache(default_calibration.cache)
    assert cache.version == 8502 and cache.algorithm == "EntropyCalibration2"
    cached = {name for name, t in ranges["tensors"].items() if t["in_cache"]}
    assert set(cache.scales) == cached
    for name, scale in cache.scales.items():
        amax = max(abs(ranges["tensors"][name]["min"]), abs(ranges["tensors"][name]["max"]))
        assert scale == np.float32(amax / 127.0), name   # exactly the float32 TensorRT will read


def test_cache_names_are_fp32_onnx_tensors_and_match_the_qdq_scales(default_calibration, trained_onnx):
    fp32 = onnx.load(str(trained_onnx))
    tensors = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
    cache = read_cache(default_calibration.cache)
    assert set(cache.scales) <= tensors
    outputs = {o.name for o in fp32.graph.output}
    assert not set(cache.scales) & outputs            # graph outputs keep float
    assert "frames" not in cache.scales and "_to_copy" not in cache.scales  # pre-processing stays float
    qdq = onnx.load(str(default_calibration.output))
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    compared = 0
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in cache.scales:
            assert float(inits[node.input[1]]) == pytest.approx(cache.scales[node.input[0]], rel=1e-6), node.input[0]
            compared += 1
    assert compared >= 15
    # every tensor the Q/DQ graph quantizes has a cache entry (the implicit path quantizes the same tensors)
    quantized = {n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    assert quantized <= set(cache.scales)


def test_engine_stage_reads_our_cache(default_calibration):
    from fcn_edge.engine.build import read_calibration_cache_header

    tag, algorithm, names = read_calibration_cache_header(default_calibration.cache)
    assert (tag, algorithm) == ("8502", "EntropyCalibration2")
    assert names == set(read_cache(default_calibration.cache).scales)


def test_hex_is_the_big_endian_float32_bit_pattern():
    assert scale_to_hex(1.0) == "3f800000"
    assert scale_to_hex(2.0 / 127) == struct.pack(">f", np.float32(2.0 / 127)).hex()
    assert hex_to_scale("3c010204") == struct.unpack(">f", bytes.fromhex("3c010204"))[0]
    for value in (1e-6, 0.0157, 3.5, 1234.5):
        assert hex_to_scale(scale_to_hex(value)) == np.float32(value)


def test_headers_per_method_and_version():
    text = cache_text({"a": 127.0, "b": 0.0}, trt_version="10.3.0", method="max")
    lines = text.splitlines()
    assert lines[0] == "TRT-100300-MinMaxCalibration"
    assert lines[1] == "a: 3f800000"
    assert hex_to_scale(lines[2].split(": ")[1]) > 0     # an all-zero tensor still gets a positive scale
    assert cache_text({"a": 1.0}, trt_version="8.6.1", method="percentile").startswith("TRT-8601-EntropyCalibration2\n")


@pytest.mark.parametrize("text,number", [("8.5.2", 8502), ("8.6.1", 8601), ("10.3.0", 100300), ("10.15.2", 101502),
                                         ("11.4", 110400)])
def test_trt_version_numbers(text, number):
    assert parse_trt_version_number(text) == number


@pytest.mark.parametrize("text", ["8", "eight", "8.5.x", "3.1.0", "10.100.0"])
def test_bad_trt_versions(text):
    with pytest.raises(CalibrationConfigError):
        parse_trt_version_number(text)


def test_read_cache_rejects_other_files(tmp_path):
    from fcn_edge.errors import ArtifactError

    bad = tmp_path / "x.cache"
    bad.write_text("not a cache\n")
    with pytest.raises(ArtifactError, match="not a TensorRT calibration cache"):
        read_cache(bad)
    bad.write_text("TRT-8502-EntropyCalibration2\nrelu: zz\n")
    with pytest.raises(ArtifactError, match="line 2"):
        read_cache(bad)
