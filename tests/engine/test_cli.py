"""fcn-edge build-engine from the command line: clean one-line failures here, plans via --dry-run."""

from __future__ import annotations

import pytest

from tests.conftest import _has_cuda_gpu, _has_tensorrt, assert_one_line_error
from tests.engine.onnx_models import make_head_onnx

NO_BUILDER = not (_has_tensorrt() and _has_cuda_gpu())


@pytest.mark.skipif(not NO_BUILDER, reason="this machine can build engines")
def test_fails_cleanly_without_tensorrt_or_gpu(run_cli, head8_onnx, tmp_path):
    completed = run_cli("build-engine", head8_onnx, "-o", tmp_path / "x.engine")
    assert completed.returncode == 3  # MissingDependencyError
    assert_one_line_error(completed, "cannot build TensorRT engines on this machine")
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    line = lines[0]
    if not _has_tensorrt():
        assert "TensorRT" in line and ("pip install tensorrt" in line or "JetPack" in line)
    if not _has_cuda_gpu():
        assert "NVIDIA" in line
    assert not (tmp_path / "x.engine").exists() and not (tmp_path / "x.engine.json").exists()


@pytest.mark.parametrize("trt,expect", [
    ("8.5", ["creation flags: EXPLICIT_BATCH", "builder flags: FP16", "phases and elapsed time"]),
    ("8.6", ["creation flags: EXPLICIT_BATCH", "builder flags: FP16"]),
    ("10.3", ["weakly typed; creation flags: none", "builder flags: FP16", "TensorRT's progress monitor"]),
    ("11.4", ["ONNX parsed: converted to FP16", "strongly typed", "builder flags: none"]),
])
def test_dry_run_prints_the_plan_per_version(run_cli, head8_onnx, trt, expect):
    completed = run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", trt, "--precision", "fp16")
    assert completed.returncode == 0, completed.stderr
    for needle in expect:
        assert needle in completed.stdout, (needle, completed.stdout)
    assert f"would write {head8_onnx.with_name('head8.fp16.engine')}" in completed.stdout


def test_dry_run_dla_flags_fcn32s(run_cli, tiny_fcn32s_aligned):
    completed = run_cli("build-engine", tiny_fcn32s_aligned, "--dry-run", "--trt-version", "8.5", "--dla", "0",
                        "--precision", "fp16")
    assert_one_line_error(completed, "add --gpu-fallback", "upscore", "kernel 64x64")
    assert "cannot run on DLA: /fcn/upscore/ConvTranspose" in completed.stdout
    with_fallback = run_cli("build-engine", tiny_fcn32s_aligned, "--dry-run", "--trt-version", "8.5", "--dla", "0",
                            "--gpu-fallback", "--precision", "fp16")
    assert with_fallback.returncode == 0, with_fallback.stderr
    assert "will run on the GPU" in with_fallback.stderr


def test_dry_run_dla_passes_fcn8s_aligned(run_cli, tiny_fcn8s_aligned):
    completed = run_cli("build-engine", tiny_fcn8s_aligned, "--dry-run", "--trt-version", "10.3", "--dla", "0",
                        "--gpu-fallback", "--precision", "fp16")
    assert completed.returncode == 0, completed.stderr
    assert "26 of 26 conv/deconv/pool layers can run on DLA" in completed.stdout
    assert "GPU fallback for the non-conv layers" in completed.stdout
    assert "rewrote 3 padded deconvolutions" in completed.stdout


def test_profile_on_the_command_line(run_cli, head8_onnx):
    completed = run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "10.3", "--profile", "desktop-fp16",
                        "--workspace", "256")
    assert completed.returncode == 0, completed.stderr
    assert "profile desktop-fp16" in completed.stdout and "workspace: 256 MiB" in completed.stdout
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "10.3", "--profile", "orin-int9"),
                          "no build profile named 'orin-int9'", "did you mean 'orin-int8'")


def test_bad_profile_file(run_cli, head8_onnx, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('precision = "fp16"\nworkspace = 100\n')
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "10.3", "--profile", bad),
                          str(bad), "unknown key 'workspace'", "workspace_mib")


def test_user_errors_are_one_line(run_cli, head8_onnx, tmp_path):
    assert_one_line_error(run_cli("build-engine", tmp_path / "missing.onnx", "--dry-run", "--trt-version", "10.3"),
                          "missing.onnx does not exist")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--trt-version", "10.3"), "--trt-version only plans")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "11.4", "--precision", "int8",
                                  "--calib-cache", tmp_path / "none.cache"), "calibration cache", "does not exist")
    cache = tmp_path / "bad.cache"
    cache.write_text("hello\n")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "8.6", "--precision", "int8",
                                  "--calib-cache", cache), "not a TensorRT calibration cache")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--dry-run", "--trt-version", "11.4", "--precision", "int8"),
                          "needs INT8 scales")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    assert_one_line_error(run_cli("build-engine", garbage, "--dry-run", "--trt-version", "10.3"), "not a readable ONNX model")


def test_calibration_cache_dry_run(run_cli, tmp_path):
    onnx_path = make_head_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "m.calib.cache"
    cache.write_text("TRT-8502-EntropyCalibration2\nnormalised: 3c010a14\nscore_fr: 3d4ccccd\n")
    completed = run_cli("build-engine", onnx_path, "--dry-run", "--trt-version", "8.5", "--precision", "int8",
                        "--calib-cache", cache)
    assert completed.returncode == 0, completed.stderr
    assert "IInt8EntropyCalibrator2 reading" in completed.stdout
    assert "would write" in completed.stdout and "m.int8.engine" in completed.stdout
    other = tmp_path / "other.cache"
    other.write_text("TRT-8502-EntropyCalibration2\nsomething_else: 3c010a14\n")
    assert_one_line_error(run_cli("build-engine", onnx_path, "--dry-run", "--trt-version", "8.5", "--precision", "int8",
                                  "--calib-cache", other), "names none of m.onnx's tensors")


def test_verify_options_are_checked_before_tensorrt_is_looked_for(run_cli, head8_onnx, tmp_path):
    """build-engine --verify/--max-drop: one-line errors here, where TensorRT is absent (the build itself cannot run)."""
    data = tmp_path / "data"
    data.mkdir()
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--precision", "int8", "--max-drop", "0.5"),
                          "give --verify DATA")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--precision", "int8", "--verify", tmp_path / "nope"),
                          "--verify", "does not exist")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--precision", "fp16", "--verify", data),
                          "--precision fp16 has nothing to measure")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--precision", "int8", "--verify", data, "--max-drop", "-1"),
                          "--max-drop is mean IU points")
    assert_one_line_error(run_cli("build-engine", head8_onnx, "--precision", "int8", "--verify-images", "5"),
                          "--verify-images needs --verify")
    # valid options get as far as the machine check: TensorRT is missing here
    completed = run_cli("build-engine", head8_onnx, "--precision", "int8", "--verify", data, "--max-drop", "0.5",
                        "-o", tmp_path / "x.engine")
    assert_one_line_error(completed)
    assert "verify" not in completed.stderr.lower() and not (tmp_path / "x.engine").exists()
