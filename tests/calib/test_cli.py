"""fcn-edge calibrate on the command line: outputs, warnings and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tests.conftest import assert_one_line_error


def test_cli_writes_the_three_outputs_and_reports_accuracy(run_cli, model_copy, synth_data, tmp_path):
    report_json = tmp_path / "report.json"
    done = run_cli("calibrate", model_copy, "--images", synth_data, "--num", "24", "--eval-images", "6",
                   "--no-sensitivity", "--json", report_json, check=True)
    out = model_copy.with_name("model.int8.onnx")
    assert f"wrote {out}" in done.stdout
    assert model_copy.with_name("model.calib.cache").is_file()
    ranges = json.loads(model_copy.with_name("model.int8.calib.json").read_text())
    assert ranges["method"] == "entropy" and ranges["images"]["used"] == 24
    assert len(ranges["images"]["images"]) == 24 and len(ranges["images"]["frames_sha256"]) == 64
    assert all(len(im["sha256"]) == 64 for im in ranges["images"]["images"])
    assert ranges["keep_float"] == {"ConvTranspose": ["upscore2", "upscore_pool4", "upscore8"]}
    assert "pixel agreement INT8 vs FP32" in done.stdout      # label-free check on held-out images
    assert "computing entropy ranges for model.int8.onnx (tensorrt Q/DQ placement)" in done.stderr
    report = json.loads(report_json.read_text())
    assert report["accuracy"]["kind"] == "held-out" and report["accuracy"]["images"] == 6
    assert "Traceback" not in done.stderr


def test_few_images_warn_but_work(run_cli, model_copy, synth_data, tmp_path):
    done = run_cli("calibrate", model_copy, "--images", synth_data, "--num", "5", "--no-accuracy",
                   "-o", tmp_path / "few.int8.onnx", "--target", "trt11")
    assert done.returncode == 0, done.stderr
    assert "only 5 calibration images" in done.stderr
    assert not (tmp_path / "few.calib.cache").exists()      # TensorRT 11 has no calibrators: no cache by default


def test_missing_and_foreign_models_are_one_line_errors(run_cli, tmp_path, synth_data, tiny_checkpoint):
    assert_one_line_error(run_cli("calibrate", tmp_path / "none.onnx", "--images", synth_data), "none.onnx",
                          "does not exist")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    assert_one_line_error(run_cli("calibrate", garbage, "--images", synth_data), "garbage.onnx", "not an ONNX model")
    # a plain ONNX without fcn-edge metadata
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 8, 8])
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    plain = helper.make_model(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g", [x], [y], [w]))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(plain, str(foreign))
    assert_one_line_error(run_cli("calibrate", foreign, "--images", synth_data), "not an fcn-edge ONNX")
    assert_one_line_error(run_cli("calibrate", tiny_checkpoint, "--images", synth_data), "PyTorch checkpoint",
                          "fcn-edge export")


def test_already_quantized_model_is_refused(run_cli, default_calibration, synth_data):
    done = run_cli("calibrate", default_calibration.output, "--images", synth_data)
    assert_one_line_error(done, "already quantized", "FP32 ONNX")


def test_model_without_float_weights_is_refused(run_cli, model_copy, synth_data, tmp_path):
    # every convolution weight becomes an int8 initializer cast to float at run time
    model = onnx.load(str(model_copy))
    inits = {i.name: i for i in model.graph.initializer}
    weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}
    casts = []
    for name in sorted(weights & set(inits)):
        values = np.clip(np.rint(numpy_helper.to_array(inits[name]) * 100), -127, 127).astype(np.int8)
        inits[name].CopyFrom(numpy_helper.from_array(values, name + "_int8"))
        casts.append(helper.make_node("Cast", [name + "_int8"], [name], to=onnx.TensorProto.FLOAT))
    for cast in casts:
        model.graph.node.insert(0, cast)
    int_model = tmp_path / "intweights.onnx"
    onnx.save(model, str(int_model))
    assert_one_line_error(run_cli("calibrate", int_model, "--images", synth_data), "no float convolution weights")


def test_option_errors(run_cli, model_copy, synth_data, tmp_path):
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", tmp_path / "nowhere"), "nowhere", "does not exist")
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "--keep-float", "upscore16"),
                          "upscore16", "upscore8")
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "--num", "0"), "--num")
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "--percentile", "30",
                                  "--method", "percentile"), "--percentile")
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "-o", model_copy), "input model")
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "--cache-trt-version", "eight"),
                          "--cache-trt-version")
    images_only = tmp_path / "images_only"
    images_only.mkdir()
    (images_only / "a.png").write_bytes((synth_data / "val" / "images" / "00000.jpg").read_bytes())
    assert_one_line_error(run_cli("calibrate", model_copy, "--images", synth_data, "--val", images_only, "--num", "4"),
                          "--val", "not a labelled dataset")


def test_modelopt_quantizer_needs_modelopt(run_cli, model_copy, synth_data):
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except ImportError:
        done = run_cli("calibrate", model_copy, "--images", synth_data, "--quantizer", "modelopt")
        assert_one_line_error(done, "modelopt", "pip install nvidia-modelopt")
        assert done.returncode == 3
    else:  # pragma: no cover - only where ModelOpt is installed
        done = run_cli("calibrate", model_copy, "--images", synth_data, "--quantizer", "modelopt", "--num", "8",
                       "--no-accuracy", check=True)
        assert "Q/DQ INT8" in done.stdout


def test_strict_turns_accuracy_warnings_into_a_failure(run_cli, model_copy, synth_data, tmp_path):
    # ranges cut at the 60th percentile of |x| clip most activations: agreement collapses, --strict fails
    done = run_cli("calibrate", model_copy, "--images", synth_data, "--num", "16", "--val", synth_data,
                   "--max-val-images", "8", "--no-sensitivity", "--method", "percentile", "--percentile", "60",
                   "--strict", "-o", tmp_path / "bad.int8.onnx")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "WARNING" in done.stderr and "accuracy check failed" in done.stderr
    assert (tmp_path / "bad.int8.onnx").is_file()                 # written anyway, with the figures to judge it
