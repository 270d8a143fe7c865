"""ONNX metadata: round trip, plain keys, the weight-free reader, and errors for foreign files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fcn_edge import __version__
from fcn_edge.errors import ArtifactError
from fcn_edge.export import EXPORT_KEY, MODEL_KEY, ExportFacts, read_onnx_header, read_onnx_metadata
from fcn_edge.fileio import sha256_file


def test_round_trip_model_info_and_facts(frames_export, tiny_checkpoint, tiny_info):
    info, facts = read_onnx_metadata(frames_export.path)
    assert info == tiny_info.replace(input_size=(64, 96))
    assert info.class_names == tiny_info.class_names and info.palette == tiny_info.palette
    assert (facts.io, facts.input, facts.outputs) == ("frames", "frames", ["labels", "confidence", "logits"])
    assert facts.size == (64, 96) and facts.batch == 1 and facts.dynamic is None
    assert (facts.opset, facts.geometry, facts.precision) == (17, "aligned", "fp32")
    assert facts.source_sha256 == sha256_file(tiny_checkpoint) and facts.source_name == tiny_checkpoint.name
    assert facts.fcn_edge_version == __version__
    assert facts.output_dtypes == {"labels": "uint8", "confidence": "uint8", "logits": "float32"}
    assert facts.confidence_scale == pytest.approx(1 / 255)
    assert facts.input_shape() == [1, 64, 96, 3] and facts.input_channel_order == "BGR"
    assert facts.verification["passed"] is True and facts.verification["label_agreement"] >= 0.9999
    assert facts == frames_export.facts


def test_plain_keys_readable_with_onnx(frames_export, tiny_info):
    props = {p.key: p.value for p in onnx.load(str(frames_export.path)).metadata_props}
    assert json.loads(props[MODEL_KEY]) == tiny_info.replace(input_size=(64, 96)).to_dict()
    assert json.loads(props[EXPORT_KEY])["outputs"] == ["labels", "confidence", "logits"]
    assert json.loads(props["fcn_edge.class_names"]) == tiny_info.class_names
    assert props["fcn_edge.arch"] == "fcn8s" and props["fcn_edge.num_classes"] == "5"
    assert props["fcn_edge.version"] == __version__ and props["fcn_edge.io"] == "frames"
    assert "BGR -> RGB" in props["fcn_edge.preprocessing"]
    assert props["fcn_edge.source"].startswith("tiny_fcn8s.pt sha256:")


def test_header_reader_agrees_with_onnx(dynamic_export):
    header = read_onnx_header(dynamic_export.path)
    model = onnx.load(str(dynamic_export.path))
    assert header.metadata == {p.key: p.value for p in model.metadata_props}
    assert header.opsets[""] == 17 and header.producer_name == "fcn-edge"
    assert [(t.name, t.dtype, t.shape) for t in header.inputs] == [("frames", "uint8", ["batch", "height", "width", 3])]
    assert [t.name for t in header.outputs] == ["labels", "confidence"]


def test_facts_json_round_trip_keeps_unknown_keys():
    facts = ExportFacts(io="raw", input="input", outputs=["logits"], size=(32, 48), batch=None,
                        dynamic={"batch": [1, 2, 8], "height": [32, 32, 32], "width": [48, 48, 48]},
                        opset=17, geometry="paper", calibration={"images": 100})
    data = facts.to_dict()
    data["added_by_a_newer_version"] = {"x": 1}
    again = ExportFacts.from_json(json.dumps(data))
    assert again.extra == {"added_by_a_newer_version": {"x": 1}}
    assert again.to_dict() == data
    assert again.input_shape() == ["batch", 3, 32, 48]


def test_facts_from_a_future_version_are_refused():
    with pytest.raises(ArtifactError, match="upgrade fcn-edge"):
        ExportFacts.from_dict({"io": "frames", "input": "frames", "outputs": ["labels"], "size": [1, 1],
                               "opset": 17, "geometry": "aligned", "format_version": 99})


def _save_foreign(path, with_metadata=None):
    weight = numpy_helper.from_array(np.zeros((21, 3, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 500, 500])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 21, 500, 500])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch", ir_version=8)
    for key, value in (with_metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_foreign_fcn_onnx_gets_a_helpful_error(tmp_path):
    path = _save_foreign(tmp_path / "fcn8s_from_somewhere.onnx")
    with pytest.raises(ArtifactError) as err:
        read_onnx_metadata(path)
    text = str(err.value)
    assert "not an fcn-edge ONNX" in text and "plain segmentation network" in text
    assert "'x' float32 [1,3,500,500]" in text and "fcn-edge export" in text


def test_non_onnx_and_missing_files(tmp_path, tiny_checkpoint):
    with pytest.raises(ArtifactError, match="does not exist"):
        read_onnx_metadata(tmp_path / "missing.onnx")
    with pytest.raises(ArtifactError, match="PyTorch checkpoint"):
        read_onnx_metadata(tiny_checkpoint)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x0f\xff\xff\xff" * 10)
    with pytest.raises(ArtifactError, match="not an ONNX model"):
        read_onnx_metadata(junk)
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(helper.make_graph([], "g", [], [])), str(plain))
    with pytest.raises(ArtifactError, match="run fcn-edge export first"):
        read_onnx_metadata(plain)


def test_corrupt_metadata_is_named(tmp_path):
    path = _save_foreign(tmp_path / "bad.onnx", {MODEL_KEY: "{not json", EXPORT_KEY: "{}"})
    with pytest.raises(ArtifactError, match="not valid JSON.*re-export"):
        read_onnx_metadata(path)


def test_truncated_export_is_refused(frames_export, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(frames_export.path.read_bytes()[: frames_export.file_bytes // 2])
    with pytest.raises(ArtifactError, match="corrupt, truncated"):
        read_onnx_metadata(cut)


def test_reading_metadata_imports_neither_torch_nor_onnx(frames_export):
    import subprocess
    import sys

    from ..conftest import cli_env

    code = ("import sys; from fcn_edge.export import read_onnx_metadata; "
            f"info, facts = read_onnx_metadata({str(frames_export.path)!r}); "
            "print(facts.outputs, 'torch' in sys.modules, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['labels', 'confidence', 'logits'] False False"


def test_props_parser_shared_by_every_reader(frames_export):
    from fcn_edge.export import parse_metadata_props

    props = read_onnx_header(frames_export.path).metadata
    info, facts = parse_metadata_props(props, "m.onnx")
    assert (info, facts) == read_onnx_metadata(frames_export.path)
    assert parse_metadata_props({"producer": "someone else"}, "m.onnx") == (None, None)
    with pytest.raises(ArtifactError, match="m.onnx has 'fcn_edge.model' metadata but no 'fcn_edge.export'"):
        parse_metadata_props({MODEL_KEY: props[MODEL_KEY]}, "m.onnx")
    newer = json.loads(props[EXPORT_KEY])
    newer["format_version"] = 99
    with pytest.raises(ArtifactError, match="m.onnx: .*upgrade fcn-edge"):
        parse_metadata_props({MODEL_KEY: props[MODEL_KEY], EXPORT_KEY: json.dumps(newer)}, "m.onnx")
