"""Missing, empty, truncated and random-bytes checkpoints, ONNX files and engines, through every command.

Each case runs the real CLI (``python -m fcn_edge``) and expects what a user should see:
a non-zero exit, one ``error:`` line naming the file, no traceback, and every output
the command would have written still holding its previous bytes (no temporary left).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import assert_one_line_error, cli_env
from tests.reliability.conftest import KINDS, leftovers, snapshot

PREVIOUS = b"previous artifact, must survive\n"


def _ctx(tmp_path, tiny_data, sample_image):
    out = tmp_path / "out"
    out.mkdir()
    return SimpleNamespace(out=out, data=tiny_data, image=sample_image)


# command name -> (argv builder, outputs that exist beforehand and must survive)
CKPT_COMMANDS = {
    "eval": (lambda m, c: ["eval", m, "--data", c.data, "--json", c.out / "eval.json"], ["eval.json"]),
    "export": (lambda m, c: ["export", m, "-o", c.out / "model.onnx", "--no-verify"], ["model.onnx"]),
    "run": (lambda m, c: ["run", m, "--source", c.image, "--stats-json", c.out / "stats.json"], ["stats.json"]),
    "bench": (lambda m, c: ["bench", m, "-n", "1", "--warmup", "0", "--json", c.out / "bench.json"], ["bench.json"]),
    "train": (lambda m, c: ["train", "--data", c.data, "--init-from", m, "--out", c.out / "run", "--iterations", "1",
                            "--width", "1/16", "--crop", "64x64", "--workers", "0", "--device", "cpu", "--batch-size", "2"], []),
}
ONNX_COMMANDS = {
    "eval": (lambda m, c: ["eval", m, "--data", c.data, "--json", c.out / "eval.json"], ["eval.json"]),
    "calibrate": (lambda m, c: ["calibrate", m, "--images", c.data, "-o", c.out / "m.int8.onnx"],
                  ["m.int8.onnx", "m.calib.cache", "m.int8.calib.json"]),
    "build-engine --dry-run": (lambda m, c: ["build-engine", m, "--dry-run", "--trt-version", "10.3"], []),
    "build-engine": (lambda m, c: ["build-engine", m, "-o", c.out / "m.engine"], ["m.engine", "m.engine.json"]),
    "run": (lambda m, c: ["run", m, "--source", c.image, "--stats-json", c.out / "stats.json"], ["stats.json"]),
    "bench": (lambda m, c: ["bench", m, "-n", "1", "--warmup", "0", "--json", c.out / "bench.json"], ["bench.json"]),
    "triton-repo": (lambda m, c: ["triton-repo", m, "-o", c.out / "repo"], ["repo/README.md"]),
    "export --lint-only": (lambda m, c: ["export", "--lint-only", m, "--json", c.out / "lint.json"], ["lint.json"]),
}
ENGINE_COMMANDS = {
    "eval": (lambda m, c: ["eval", m, "--data", c.data, "--json", c.out / "eval.json"], ["eval.json"]),
    "run": (lambda m, c: ["run", m, "--source", c.image, "--stats-json", c.out / "stats.json"], ["stats.json"]),
    "bench": (lambda m, c: ["bench", m, "-n", "1", "--warmup", "0", "--json", c.out / "bench.json"], ["bench.json"]),
    "triton-repo": (lambda m, c: ["triton-repo", m, "-o", c.out / "repo"], ["repo/README.md"]),
}
TABLE = {"ckpt": CKPT_COMMANDS, "onnx": ONNX_COMMANDS, "engine": ENGINE_COMMANDS}
CASES = [(artifact, command, kind) for artifact, commands in TABLE.items() for command in commands for kind in KINDS]


def _expect_refused(run_cli, argv, ctx, outputs, needles, env=None):
    for name in outputs:
        (ctx.out / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx.out / name).write_bytes(PREVIOUS)
    before = snapshot(ctx.out)
    completed = run_cli(*argv, cwd=ctx.out, env=env)
    assert_one_line_error(completed, *needles)
    assert snapshot(ctx.out) == before, "an existing output was changed or a new file was left"
    assert not leftovers(ctx.out)
    return completed


@pytest.mark.parametrize("artifact,command,kind", CASES, ids=[f"{a}-{c}-{k}".replace(" ", "") for a, c, k in CASES])
def test_bad_artifact_is_one_line_error(run_cli, bad_artifacts, tiny_data, sample_image, stub_tensorrt, tmp_path,
                                        artifact, command, kind):
    ctx = _ctx(tmp_path, tiny_data, sample_image)
    model = bad_artifacts[(artifact, kind)]
    build, outputs = TABLE[artifact][command]
    needles = [model.name] + (["does not exist"] if kind == "missing" else ["empty"] if kind == "empty" else [])
    env = None
    if artifact == "engine" and kind in ("truncated", "random"):
        # The engine's sidecar is checked before TensorRT sees the bytes; a test double of the
        # tensorrt package (only __version__) lets that check run here, with no TensorRT installed.
        env = {"PYTHONPATH": f"{stub_tensorrt}{os.pathsep}{cli_env()['PYTHONPATH']}"}
        needles.append("sidecar")
    _expect_refused(run_cli, build(model, ctx), ctx, outputs, needles, env=env)


def test_engine_from_another_tensorrt_is_refused_before_loading(run_cli, tiny_engine_pair, tiny_data, sample_image,
                                                                 stub_tensorrt, tmp_path):
    """The pair is intact but was built with TensorRT 8.6.2; this (test-double) TensorRT is 10.3.0."""
    ctx = _ctx(tmp_path, tiny_data, sample_image)
    env = {"PYTHONPATH": f"{stub_tensorrt}{os.pathsep}{cli_env()['PYTHONPATH']}"}
    for build, outputs in (ENGINE_COMMANDS["run"], ENGINE_COMMANDS["eval"]):
        _expect_refused(run_cli, build(tiny_engine_pair, ctx), ctx, outputs,
                        [tiny_engine_pair.name, "TensorRT 8.6.2", "10.3.0", "rebuild"], env=env)


def test_engine_sidecar_mismatch_at_check_level(tiny_engine_pair):
    """Another TensorRT and another GPU, each named: the sidecar check (no TensorRT needed)."""
    from fcn_edge.artifacts.gpu import GpuInfo
    from fcn_edge.artifacts.sidecar import prepare_engine_load
    from fcn_edge.errors import ArtifactError

    with pytest.raises(ArtifactError) as info:
        prepare_engine_load(tiny_engine_pair, "8.6.2", GpuInfo("Tesla T4", (7, 5)))
    message = str(info.value)
    assert "\n" not in message and tiny_engine_pair.name in message
    assert "Orin (sm 8.7)" in message and "Tesla T4 (sm 7.5)" in message
    with pytest.raises(ArtifactError, match="TensorRT 8.6.2 but this is TensorRT 10.3.0"):
        prepare_engine_load(tiny_engine_pair, "10.3.0", GpuInfo("Orin", (8, 7), integrated=True))
    prepare_engine_load(tiny_engine_pair, "8.6.2", GpuInfo("Orin", (8, 7), integrated=True))  # the match loads


@pytest.fixture(scope="module")
def not_fcn_onnx(tmp_path_factory, tiny_onnx):
    """Two ONNX files that are not FCNs: a foreign 2-D MLP, and the same carrying a stolen fcn-edge description."""
    import onnx
    from onnx import TensorProto, helper

    from fcn_edge.artifacts.onnx_metadata import EXPORT_KEY, MODEL_KEY, read_onnx_header

    folder = tmp_path_factory.mktemp("rel-not-fcn")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "mlp", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="someone else")
    model.ir_version = 8
    foreign = folder / "mlp.onnx"
    onnx.save(model, str(foreign))
    header = read_onnx_header(tiny_onnx)
    for key in (MODEL_KEY, EXPORT_KEY):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, header.metadata[key]
    disguised = folder / "disguised.onnx"
    onnx.save(model, str(disguised))
    # an image input, but no labels/logits out, under the tiny model's description
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, [1, 64, 96, 3])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 64, 96, 3])
    graph = helper.make_graph([helper.make_node("Cast", ["frames"], ["probs"], name="cast", to=TensorProto.FLOAT)],
                              "image", [frames], [probs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="someone else")
    model.ir_version = 8
    for key in (MODEL_KEY, EXPORT_KEY):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, header.metadata[key]
    wrong_outputs = folder / "wrong_outputs.onnx"
    onnx.save(model, str(wrong_outputs))
    return {"foreign": foreign, "disguised": disguised, "wrong-outputs": wrong_outputs}


NOT_FCN_COMMANDS = ["eval", "calibrate", "run", "bench", "triton-repo", "build-engine --dry-run"]


@pytest.mark.parametrize("which", ["foreign", "disguised", "wrong-outputs"])
@pytest.mark.parametrize("command", NOT_FCN_COMMANDS)
def test_onnx_that_is_not_an_fcn(run_cli, not_fcn_onnx, tiny_data, sample_image, tmp_path, command, which):
    ctx = _ctx(tmp_path, tiny_data, sample_image)
    model = not_fcn_onnx[which]
    build, outputs = ONNX_COMMANDS[command]
    _expect_refused(run_cli, build(model, ctx), ctx, outputs, [model.name])


def test_checkpoint_class_count_disagrees_with_dataset(run_cli, tiny_data, sample_image, tmp_path):
    """A 3-class checkpoint on 5-class data: eval refuses; train --init-from refuses unless --reinit-classifier."""
    from tests.eval.conftest import save_tiny

    ctx = _ctx(tmp_path, tiny_data, sample_image)
    three = save_tiny(tmp_path / "three_classes.pt", classes=3)
    _expect_refused(run_cli, ["eval", three, "--data", tiny_data, "--json", ctx.out / "eval.json"], ctx,
                    ["eval.json"], ["three_classes.pt", "3 classes", "5"])
    train = CKPT_COMMANDS["train"][0](three, ctx)
    _expect_refused(run_cli, train, ctx, [], ["three_classes.pt", "3 classes", "--reinit-classifier"])
    assert not (ctx.out / "run" / "best.pt").exists()
