"""fcn-edge triton-repo: repositories for the official Triton containers, checked with Triton's own protobuf."""

from __future__ import annotations

import json

import pytest

from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.artifacts.sidecar import make_sidecar, write_engine_and_sidecar
from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo
from tests.conftest import assert_one_line_error

pb = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                         reason="tritonclient[grpc] is not installed (pip install 'fcn-edge[serve]')")
text_format = pytest.importorskip("google.protobuf.text_format")


def _parse(path):
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def _type(value: int) -> str:
    return pb.DataType.Name(value)


@pytest.fixture(scope="module")
def static_onnx(tmp_path_factory, tiny_checkpoint):
    """``fcn-edge export`` with the default static batch of 1."""
    from tests.onnx_models import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("repo") / "tiny_b1.onnx",
                             outputs=("labels", "confidence"))


@pytest.fixture
def fake_engine(tmp_path, tiny_info):
    """Test double for a TensorRT engine: opaque bytes with a real sidecar (the repository never loads it)."""
    engine = tmp_path / "tiny.fp16.engine"
    io = {"inputs": [{"name": "frames", "shape": [-1, 64, 96, 3], "dtype": "uint8",
                      "profile": {"min": [1, 64, 96, 3], "opt": [4, 64, 96, 3], "max": [16, 64, 96, 3]}}],
          "outputs": [{"name": "labels", "shape": [-1, 64, 96], "dtype": "uint8"}]}
    sidecar = make_sidecar(engine_bytes=b"plan", engine_name=engine.name, trt_version="10.3.0",
                           gpu=GpuInfo("NVIDIA A10", (8, 6)), precision="fp16", io=io, source_name="tiny.onnx",
                           source_sha256="0" * 64, source_opset=17, build={}, version_compatible=False,
                           exclude_lean_runtime=False, hardware_compat="none", dla_core=None, gpu_fallback=False,
                           model=tiny_info.to_dict(), export={"io": "frames", "size": [64, 96]})
    write_engine_and_sidecar(engine, b"TENSORRT-PLAN-BYTES", sidecar)
    return engine


def test_onnx_models_get_configs_derived_from_the_model(run_cli, serve_onnx, static_onnx, tmp_path):
    from fcn_edge.export import read_onnx_metadata

    info = read_onnx_metadata(serve_onnx)[0]
    repo = tmp_path / "models"
    completed = run_cli("triton-repo", serve_onnx, static_onnx, "-o", repo, "--name", "seg", "--name", "seg_b1",
                        "--instances", "2", "--keep-versions", "2", "--max-queue-delay-us", "500")
    assert completed.returncode == 0, completed.stderr
    dynamic = _parse(repo / "seg" / "config.pbtxt")
    assert dynamic.name == "seg" and dynamic.platform == "onnxruntime_onnx"
    assert dynamic.max_batch_size == 8
    assert [(t.name, _type(t.data_type), list(t.dims)) for t in dynamic.input] == [("frames", "TYPE_UINT8", [64, 96, 3])]
    assert [(t.name, _type(t.data_type), list(t.dims)) for t in dynamic.output] == [
        ("labels", "TYPE_UINT8", [64, 96]), ("confidence", "TYPE_UINT8", [64, 96])]
    assert list(dynamic.dynamic_batching.preferred_batch_size) == [4, 8]  # the export's optimal and largest batch
    assert dynamic.dynamic_batching.max_queue_delay_microseconds == 500
    assert dynamic.instance_group[0].count == 2
    assert dynamic.version_policy.latest.num_versions == 2
    assert ModelInfo.from_json(dynamic.parameters["fcn_edge.model"].string_value).to_dict() == info.to_dict()
    assert (repo / "seg" / "1" / "model.onnx").read_bytes() == serve_onnx.read_bytes()

    static = _parse(repo / "seg_b1" / "config.pbtxt")
    assert static.max_batch_size == 0 and not static.HasField("dynamic_batching")
    assert [list(t.dims) for t in static.input] == [[1, 64, 96, 3]]  # the static batch stays in the dims
    assert "max_batch_size: 0" in (repo / "seg_b1" / "config.pbtxt").read_text()  # explicit: no auto-complete

    readme = (repo / "README.md").read_text()
    assert "tritonserver --model-repository=/models" in readme and "docker run" in readme
    assert "triton://SERVER:8000/seg " in readme and "### seg_b1" in readme


def test_client_reads_the_same_io_from_the_written_config(serve_onnx, tmp_path):
    from google.protobuf import json_format

    from fcn_edge.runtime.triton_backend import config_parameters, io_from_config
    from fcn_edge.serve.repo import RepoConfig, write_repository

    written = write_repository([serve_onnx], RepoConfig(output=tmp_path / "r"))
    config = json_format.MessageToDict(_parse(written[0].folder / "config.pbtxt"), preserving_proto_field_name=True)
    export = json.loads(config_parameters(config)["fcn_edge.export"])
    io = io_from_config(config, export, "test")
    assert (io.kind, io.size, io.batch, io.max_batch) == ("frames", (64, 96), None, 8)
    assert io.output_names == ("labels", "confidence")


def test_ort_tensorrt_accelerator_and_existing_models(run_cli, serve_onnx, tmp_path):
    repo = tmp_path / "models"
    assert run_cli("triton-repo", serve_onnx, "-o", repo, "--ort-tensorrt", "fp16").returncode == 0
    config = _parse(repo / "tiny_serve" / "config.pbtxt")
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    assert pb.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    before = (repo / "tiny_serve" / "config.pbtxt").read_text()
    again = run_cli("triton-repo", serve_onnx, "-o", repo)
    assert_one_line_error(again, "already exists", "--force")
    assert (repo / "tiny_serve" / "config.pbtxt").read_text() == before
    assert run_cli("triton-repo", serve_onnx, "-o", repo, "--force", "--max-batch", "4").returncode == 0
    assert _parse(repo / "tiny_serve" / "config.pbtxt").max_batch_size == 4
    assert not [p for p in repo.iterdir() if p.name.startswith(".fcn-edge")]


def test_engines_get_tensorrt_plan_checked_against_their_sidecar(run_cli, fake_engine, tmp_path):
    repo = tmp_path / "models"
    completed = run_cli("triton-repo", fake_engine, "-o", repo, "--server-trt", "10.3.0", "--server-gpu-sm", "8.6")
    assert completed.returncode == 0, completed.stderr
    config = _parse(repo / "tiny_fp16" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert pb.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    assert (repo / "tiny_fp16" / "1" / "model.plan").read_bytes() == b"TENSORRT-PLAN-BYTES"
    assert json.loads((repo / "tiny_fp16" / "1" / "model.plan.json").read_text())["precision"] == "fp16"
    assert "exactly TensorRT 10.3.0" in (repo / "README.md").read_text()

    wrong_trt = run_cli("triton-repo", fake_engine, "-o", tmp_path / "b", "--server-trt", "10.8.0")
    assert_one_line_error(wrong_trt, "TensorRT 10.3.0", "10.8.0")
    wrong_gpu = run_cli("triton-repo", fake_engine, "-o", tmp_path / "c", "--server-trt", "10.3.0",
                        "--server-gpu-sm", "7.5")
    assert_one_line_error(wrong_gpu, "sm 8.6", "7.5")
    assert not (tmp_path / "b" / "tiny_fp16").exists() and not (tmp_path / "c" / "tiny_fp16").exists()


def test_a_mismatched_engine_pair_is_refused(fake_engine, tmp_path):
    from fcn_edge.serve.repo import RepoConfig, write_repository

    fake_engine.write_bytes(b"another engine")
    with pytest.raises(FcnEdgeError, match="rebuild"):
        write_repository([fake_engine], RepoConfig(output=tmp_path / "r"))


def test_bad_inputs_are_one_line_errors(run_cli, serve_onnx, tiny_checkpoint, tmp_path):
    assert_one_line_error(run_cli("triton-repo", tiny_checkpoint, "-o", tmp_path / "r"), "fcn-edge export")
    assert_one_line_error(run_cli("triton-repo", serve_onnx, serve_onnx, "-o", tmp_path / "r"), "--name")
    assert_one_line_error(run_cli("triton-repo", serve_onnx, "-o", tmp_path / "r", "--max-batch", "64"),
                          "largest batch 8")
    assert_one_line_error(run_cli("triton-repo", serve_onnx, "-o", tmp_path / "missing" / "r"), "does not exist")
