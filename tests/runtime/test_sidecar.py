from __future__ import annotations

import json

import pytest

from fcn_edge.errors import ArtifactError
from fcn_edge.runtime.sidecar import check_compatibility, read_sidecar, sidecar_facts


def facts(**data):
    return sidecar_facts(data)


def test_reads_the_likely_spellings(tiny_info):
    a = facts(tensorrt_version="8.6.2", gpu={"name": "Orin", "compute_capability": "8.7"}, model=tiny_info.to_dict())
    assert a.tensorrt_version == "8.6.2" and a.gpu_name == "Orin" and a.compute_capability == (8, 7)
    assert a.model.num_classes == tiny_info.num_classes
    b = facts(tensorrt={"version": "10.3.0"}, gpu="NVIDIA A100", compute_capability=[8, 0],
              build={"version_compatible": True, "hardware_compatibility": "ampere+"})
    assert b.tensorrt_version == "10.3.0" and b.compute_capability == (8, 0)
    assert b.version_compatible and b.hardware_compatibility == "ampere+"
    assert facts(compute_capability="sm_89").compute_capability == (8, 9)
    assert facts().tensorrt_version is None


def test_matching_engine_passes_and_a_different_gpu_model_only_warns():
    f = facts(tensorrt_version="10.3.0", gpu={"name": "Orin", "compute_capability": [8, 7]})
    assert check_compatibility(f, "m.engine", tensorrt_version="10.3.0.26", gpu_name="Orin",
                               compute_capability=(8, 7)) == []
    warnings = check_compatibility(f, "m.engine", tensorrt_version="10.3.0", gpu_name="Orin NX",
                                   compute_capability=(8, 7))
    assert len(warnings) == 1 and "Orin NX" in warnings[0]


def test_version_mismatch_is_one_precise_sentence():
    f = facts(tensorrt_version="8.6.2", gpu={"name": "Orin", "compute_capability": "8.7"})
    with pytest.raises(ArtifactError) as info:
        check_compatibility(f, "m.engine", tensorrt_version="10.3.0", gpu_name="Orin", compute_capability=(8, 7))
    message = str(info.value)
    assert "\n" not in message
    assert "TensorRT 8.6.2" in message and "TensorRT 10.3.0" in message and "sm_87" in message
    assert "rebuild it here with fcn-edge build-engine" in message


def test_gpu_architecture_mismatch_and_compatibility_levels():
    f = facts(tensorrt_version="10.3.0", gpu={"name": "RTX 4090", "compute_capability": "8.9"})
    with pytest.raises(ArtifactError, match="GPU architecture"):
        check_compatibility(f, "m.engine", tensorrt_version="10.3.0", gpu_name="A100", compute_capability=(8, 0))
    hw = facts(tensorrt_version="10.3.0", compute_capability="8.9", hardware_compatibility="ampere+")
    check_compatibility(hw, "m.engine", tensorrt_version="10.3.0", gpu_name="A100", compute_capability=(8, 0))
    with pytest.raises(ArtifactError, match="Ampere or newer"):
        check_compatibility(hw, "m.engine", tensorrt_version="10.3.0", gpu_name="T4", compute_capability=(7, 5))


def test_version_compatible_engines_follow_the_supported_paths():
    vc = facts(tensorrt_version="8.6.1", version_compatible=True)
    check_compatibility(vc, "e", tensorrt_version="8.6.3", gpu_name=None, compute_capability=None)
    check_compatibility(vc, "e", tensorrt_version="10.3.0", gpu_name=None, compute_capability=None)
    with pytest.raises(ArtifactError):
        check_compatibility(vc, "e", tensorrt_version="11.0.0", gpu_name=None, compute_capability=None)
    with pytest.raises(ArtifactError):
        check_compatibility(facts(tensorrt_version="10.3.0", version_compatible=True), "e",
                            tensorrt_version="8.6.2", gpu_name=None, compute_capability=None)


def test_sidecar_files(tmp_path):
    engine = tmp_path / "m.engine"
    assert read_sidecar(engine) is None
    (tmp_path / "m.engine.json").write_text(json.dumps({"tensorrt_version": "10.3.0"}))
    assert read_sidecar(engine)["tensorrt_version"] == "10.3.0"
    (tmp_path / "m.engine.json").write_text("{ not json")
    with pytest.raises(ArtifactError, match="cannot be read"):
        read_sidecar(engine)
