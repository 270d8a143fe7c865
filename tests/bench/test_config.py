"""Parsing of bench arguments: per-model options, batch lists, sizes, and config validation."""

from __future__ import annotations

import pytest

from fcn_edge.bench.config import (BenchConfig, BenchConfigError, ModelSpec, parse_batches, parse_model_argument,
                                   parse_options, parse_size)


def test_model_arguments_carry_their_own_backend_options():
    spec = parse_model_argument("runs/best.pt::device=cuda,precision=fp16,threads=4")
    assert spec.model == "runs/best.pt" and spec.options == {"device": "cuda", "precision": "fp16", "threads": 4}
    assert spec.name == "best.pt (device=cuda, precision=fp16, threads=4)"
    assert parse_model_argument("m.onnx::providers=tensorrt,cuda,threads=2").options == {
        "providers": "tensorrt,cuda", "threads": 2}
    assert parse_model_argument("export/model.onnx") == ModelSpec("export/model.onnx")
    # an IPv6 URL's '::' is not an option separator
    assert parse_model_argument("triton://[::1]:8000/fcn8s").model == "triton://[::1]:8000/fcn8s"
    assert ModelSpec("triton://gpu:8000/fcn8s").name == "triton://gpu:8000/fcn8s"


def test_option_values_are_typed():
    assert parse_options("a=1,b=0.5,c=true,d=off,e=none,f=pycuda") == {
        "a": 1, "b": 0.5, "c": True, "d": False, "e": None, "f": "pycuda"}
    with pytest.raises(BenchConfigError, match="key=value"):
        parse_options("justtext")
    with pytest.raises(BenchConfigError, match="not an option name"):
        parse_options("1x=2")


def test_batches_and_sizes():
    assert parse_batches("1,8") == (1, 8) and parse_batches("8, 1, 8") == (8, 1)
    for bad in ("0", "1,x", "", "-1"):
        with pytest.raises(BenchConfigError, match="--batch"):
            parse_batches(bad)
    assert parse_size("512x256") == (512, 256) and parse_size("320") == (320, 320)
    for bad in ("0x5", "big", "5x"):
        with pytest.raises(BenchConfigError, match="--size"):
            parse_size(bad)


def test_config_rules():
    assert BenchConfig().effective_seconds == 5.0 and BenchConfig().duration_mode
    assert not BenchConfig(iterations=3).duration_mode
    for kwargs, needle in (({"iterations": 3, "seconds": 1.0}, "either"), ({"iterations": 0}, "--iterations"),
                           ({"seconds": 0}, "--seconds"), ({"batches": (0,)}, "batch"), ({"in_flight": 0}, "--in-flight"),
                           ({"warmup": -1}, "--warmup")):
        with pytest.raises(BenchConfigError, match=needle):
            BenchConfig(**kwargs)
    overridden = BenchConfig(seconds=2.0, warmup=5).for_model(ModelSpec("m", iterations=4, batches=(1,), warmup=1))
    assert (overridden.iterations, overridden.seconds, overridden.batches, overridden.warmup) == (4, None, (1,), 1)
