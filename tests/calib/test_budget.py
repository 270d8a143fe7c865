"""INT8 within an accuracy budget (fcn_edge.calib.budget, calibrate --max-drop/--min-agreement), on CPU.

The model is the trained tiny FCN-8s with one activation that per-tensor INT8 serves
badly (tests/calib/tiny_trained.py: plant_activation_outlier): its FP32 labels are the
trained model's, plain INT8 loses tens of mean IU points, and keeping the one layer that
reads the outlier tensor (conv3_2) float brings it back.  So the search has to find that
layer through the sensitivity ranking; the figures are re-measured outside the search.

build-engine --verify runs here with an ONNX Runtime runner standing in for the TensorRT
engine runner (no TensorRT on these machines): the measuring, budget and sidecar logic is
real, what TensorRT's kernels do to accuracy is not measured.
"""

from __future__ import annotations

import json
import shutil

import pytest

from fcn_edge.calib.accuracy import agreement, load_labelled, predict, score
from fcn_edge.calib.sources import FrameMaker
from fcn_edge.export import read_onnx_metadata
from tests.conftest import assert_one_line_error

BUDGET = 0.5  # mean IU points


@pytest.fixture(scope="module")
def outlier_copy(outlier_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("budget")
    path = folder / "outlier.onnx"
    shutil.copy(outlier_onnx, path)
    return path


@pytest.fixture(scope="module")
def search(outlier_copy, synth_data):
    from fcn_edge.calib import calibrate_within_budget

    return calibrate_within_budget(outlier_copy, synth_data, val=synth_data, max_drop=BUDGET, num_images=16,
                                   show_progress=False)


def test_plain_int8_misses_the_budget_and_the_search_meets_it(search):
    first, chosen = search.steps[0], search.chosen_step
    assert not first.met and first.mean_iu_drop > 5 * BUDGET, search.table()
    assert search.ranking[0] == "conv3_2", search.ranking
    assert chosen is not None and chosen.keep_float == ["conv3_2"] and chosen.mean_iu_drop <= BUDGET, search.table()
    assert all(step.latency_ms > 0 for step in search.steps) and search.fp32_latency_ms > 0
    table = "\n".join(search.table())
    assert "missed" in table and "met <- chosen" in table and "conv3_2" in table


def test_the_written_model_is_the_chosen_one_measured_again(search, outlier_copy, synth_data):
    output = search.report.output
    assert output.exists() and output != outlier_copy
    eval_set = load_labelled(synth_data, FrameMaker((64, 96)), split="val", limit=None, num_classes=5,
                             show_progress=False)
    fp32, int8 = predict(outlier_copy, eval_set.frames), predict(output, eval_set.frames)
    drop = 100 * (score(eval_set, fp32)["mean_iu"] - score(eval_set, int8)["mean_iu"])
    assert drop == pytest.approx(search.chosen_step.mean_iu_drop, abs=1e-6) and drop <= BUDGET
    assert agreement(fp32, int8)[0] == pytest.approx(search.chosen_step.agreement, abs=1e-9)


def test_keep_float_and_accuracy_travel_in_the_calibration_facts(search):
    _, facts = read_onnx_metadata(search.report.output)
    calibration = facts.calibration
    assert calibration["keep_float_searched"] == ["conv3_2"]
    assert calibration["keep_float"]["conv3_2"] == ["conv3_2"] and "ConvTranspose" in calibration["keep_float"]
    assert calibration["method"] == "entropy"  # the existing facts are still there
    accuracy = calibration["accuracy"]
    assert accuracy["kind"] == "labelled" and accuracy["images"] == 30
    assert accuracy["mean_iu_drop"] == pytest.approx(search.chosen_step.mean_iu_drop, abs=1e-3)
    budget = calibration["budget"]
    assert budget["max_drop"] == BUDGET and budget["met"] and len(budget["steps"]) == len(search.steps)
    doc = json.loads(search.report.ranges_json.read_text())
    assert doc["keep_float"]["conv3_2"] == ["conv3_2"] and doc["accuracy"]["mean_iu_drop_points"] <= BUDGET


def test_budget_options_are_checked(outlier_copy, synth_data):
    from fcn_edge.calib import calibrate_within_budget
    from fcn_edge.calib.config import CalibrationConfigError

    with pytest.raises(CalibrationConfigError, match="which need labels"):
        calibrate_within_budget(outlier_copy, synth_data, max_drop=0.5)
    with pytest.raises(CalibrationConfigError, match="--max-drop POINTS"):
        calibrate_within_budget(outlier_copy, synth_data)
    with pytest.raises(CalibrationConfigError, match="percentage"):
        calibrate_within_budget(outlier_copy, synth_data, min_agreement=120)


def test_cli_unreachable_budget_exits_non_zero_with_the_table(run_cli, outlier_copy, synth_data, tmp_path):
    out = tmp_path / "never.int8.onnx"
    completed = run_cli("calibrate", outlier_copy, "--images", synth_data, "--val", synth_data, "--num", "16",
                        "--max-drop", BUDGET, "--max-keep-float", "0", "-o", out)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "missed" in completed.stdout and "drop pt" in completed.stdout and "--max-keep-float 0" in completed.stdout
    assert_one_line_error(completed, "no keep-float set meets the budget")
    assert not out.exists() and not out.with_name("never.int8.calib.json").exists()


def test_cli_agreement_budget_then_info_shows_the_facts(run_cli, outlier_copy, synth_data, tmp_path):
    """No labels: --min-agreement on held-out images; the written model's facts through fcn-edge info."""
    model = tmp_path / "m.onnx"
    shutil.copy(outlier_copy, model)
    completed = run_cli("calibrate", model, "--images", synth_data, "--num", "16", "--eval-images", "8",
                        "--min-agreement", "99", check=True)
    assert "met <- chosen" in completed.stdout and "held-out" in completed.stdout
    info = run_cli("info", tmp_path / "m.int8.onnx", check=True).stdout
    assert "the budget search added conv3_2" in info and "agreement >= 99%" in info
    assert "on 8 held-out images" in info


# ------------------------------------------------------------------ facts into the engine sidecar, --verify


def _sidecar(int8_onnx, int8=None):
    from fcn_edge.artifacts.gpu import GpuInfo
    from fcn_edge.engine.onnx_info import read_onnx_facts
    from fcn_edge.artifacts.sidecar import make_sidecar

    facts = read_onnx_facts(int8_onnx)
    return facts, make_sidecar(
        engine_bytes=b"stand-in engine", engine_name="m.int8.engine", trt_version="10.3.0",
        gpu=GpuInfo("Orin", (8, 7), integrated=True), precision="int8",
        io={"inputs": [{"name": "frames", "shape": [1, 64, 96, 3], "dtype": "uint8", "profile": None}],
            "outputs": [{"name": "labels", "shape": [1, 64, 96], "dtype": "uint8"}]}, source_name=int8_onnx.name,
        source_sha256=facts.sha256, source_opset=facts.opset, build={}, version_compatible=False,
        exclude_lean_runtime=False, hardware_compat="none", dla_core=None, gpu_fallback=False,
        model=facts.model_info, export=facts.export_info, int8=int8)


def _onnx_runner_for(model):
    """Opens ``model`` with ONNX Runtime whatever engine path it is given: the TensorRT runner's stand-in."""
    from fcn_edge.runtime import open_runner

    return lambda engine_path: open_runner(model, providers="cpu")


def test_verify_measures_the_engine_and_the_sidecar_carries_everything(search, synth_data, tmp_path):
    from fcn_edge.engine.build import int8_entry
    from fcn_edge.artifacts.sidecar import read_sidecar, write_engine_and_sidecar
    from fcn_edge.engine.verify import VerifyRequest
    from fcn_edge.info import describe_artifact, format_description

    output = search.report.output
    facts, sidecar = _sidecar(output)
    lines = []
    entry = int8_entry(facts, output, b"stand-in engine", sidecar, VerifyRequest(synth_data, max_drop=BUDGET),
                       lines.append, opener=_onnx_runner_for(output))
    engine_acc = entry["engine_accuracy"]
    # the stand-in "engine" is the INT8 ONNX itself, on the same 30 labelled images: calibrate's figures again
    assert engine_acc["images"] == 30 and engine_acc["reference_onnx"] == "outlier.onnx"
    assert engine_acc["mean_iu_drop"] == pytest.approx(search.chosen_step.mean_iu_drop, abs=1e-3)
    assert engine_acc["agreement"] == pytest.approx(search.chosen_step.agreement, abs=1e-6)
    assert entry["keep_float_searched"] == ["conv3_2"] and entry["budget"]["max_drop"] == BUDGET
    assert entry["onnx_accuracy"]["mean_iu_drop"] == pytest.approx(engine_acc["mean_iu_drop"], abs=1e-3)
    assert any("verify: engine vs outlier.onnx" in line for line in lines)
    sidecar["int8"] = entry
    engine = tmp_path / "m.int8.engine"
    write_engine_and_sidecar(engine, b"stand-in engine", sidecar)
    assert read_sidecar(engine).int8 == json.loads(json.dumps(entry))
    text = format_description(describe_artifact(engine))
    assert "the budget search added conv3_2" in text and "  engine      agreement with FP32" in text


def test_verify_max_drop_fails_the_plain_int8_engine(outlier_copy, synth_data, tmp_path):
    from fcn_edge.calib import calibrate_onnx
    from fcn_edge.engine.build import int8_entry
    from fcn_edge.engine.verify import EngineBudgetMissed, VerifyRequest

    plain = calibrate_onnx(outlier_copy, synth_data, tmp_path / "plain.int8.onnx", num_images=16, accuracy=False,
                           show_progress=False).output
    shutil.copy(outlier_copy, tmp_path / "outlier.onnx")  # the FP32 source beside it, as calibrate left it
    facts, sidecar = _sidecar(plain)
    with pytest.raises(EngineBudgetMissed, match="--max-drop 0.5"):
        int8_entry(facts, plain, b"x", sidecar, VerifyRequest(synth_data, max_drop=BUDGET, images=10), print,
                   opener=_onnx_runner_for(plain))
    entry = int8_entry(facts, plain, b"x", sidecar, VerifyRequest(synth_data, images=10), print,
                       opener=_onnx_runner_for(plain))  # no budget: figures recorded, no failure
    assert entry["engine_accuracy"]["mean_iu_drop"] > BUDGET and entry["keep_float_searched"] == []


def test_sidecar_int8_entry_is_validated(search):
    from fcn_edge.artifacts.sidecar import parse_sidecar, sha256_bytes
    from fcn_edge.errors import ArtifactError

    _, sidecar = _sidecar(search.report.output, {"keep_float": {"x": ["conv1_1"]}, "onnx_accuracy": {"agreement": 0.99}})
    sidecar["engine"]["sha256"] = sha256_bytes(b"stand-in engine")
    assert parse_sidecar(sidecar).int8["onnx_accuracy"]["agreement"] == 0.99
    for bad, needle in (({"keep_float": ["conv1_1"]}, "int8.keep_float"),
                        ({"engine_accuracy": {"agreement": 1.5}}, "between 0 and 1"),
                        ({"onnx_accuracy": {"agreement": 0.9, "mean_iu_drop": "big"}}, "mean_iu_drop"),
                        ("yes", "int8 must be")):
        sidecar["int8"] = bad
        with pytest.raises(ArtifactError, match=needle):
            parse_sidecar(sidecar)
