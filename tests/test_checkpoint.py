"""Self-describing checkpoints: round trip, bare state_dicts, refusal of bad files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from fcn_edge.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, save_model
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing
from fcn_edge.models import build_model

from .conftest import TINY_WIDTH


def test_round_trip_keeps_description_and_weights(tmp_path, tiny_info):
    model = build_model("fcn8s", tiny_info.num_classes, "aligned", TINY_WIDTH)
    info = tiny_info.replace(class_names=["bg", "a", "b", "c", "d"], palette=[(1, 2, 3)] * 5)
    path = save_model(tmp_path / "m.pt", model, info, training={"iteration": 7})
    ckpt = load_checkpoint(path)
    assert ckpt.info == info
    assert ckpt.training == {"iteration": 7}
    rebuilt = ckpt.build_model()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value)
    assert rebuilt.geometry == "aligned"
    assert ckpt.build_model(geometry="paper").geometry == "paper"


def test_bare_port_state_dict_loads_with_voc_defaults(tmp_path):
    model = build_model("fcn16s", 21, "paper", TINY_WIDTH)
    path = tmp_path / "fcn16s_from_caffe.pth"
    torch.save(model.state_dict(), path)
    ckpt = load_checkpoint(path)
    assert ckpt.info.arch == "fcn16s" and ckpt.info.num_classes == 21
    assert ckpt.info.width == TINY_WIDTH
    assert ckpt.info.class_names[15] == "person"
    assert ckpt.info.preprocessing == Preprocessing.caffe()
    ckpt.build_model()  # strict load


def test_bare_state_dict_with_info_override(tmp_path):
    model = build_model("fcn8s-atonce", 3, "paper", TINY_WIDTH)
    path = tmp_path / "atonce.pth"
    torch.save({"model_state_dict": model.state_dict()}, path)
    ckpt = load_checkpoint(path, overrides={"arch": "fcn8s-atonce", "class_names": ["x", "y", "z"]})
    assert ckpt.info.arch == "fcn8s-atonce" and ckpt.info.class_names == ["x", "y", "z"]


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, tiny_info, monkeypatch):
    model = build_model("fcn8s", tiny_info.num_classes, "aligned", TINY_WIDTH)
    path = save_model(tmp_path / "m.pt", model, tiny_info)
    before = path.read_bytes()

    def boom(obj, f, *a, **k):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    from fcn_edge.errors import FcnEdgeError

    with pytest.raises(FcnEdgeError, match="no space left"):
        save_model(path, model, tiny_info)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "cannot be read"),
], ids=["empty", "random-bytes"])
def test_corrupt_files_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=needle) as info:
        load_checkpoint(path)
    assert "bad.pt" in str(info.value) and "\n" not in str(info.value)


def test_truncated_checkpoint_is_rejected(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="cut.pt"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_loading_never_runs_code_from_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": _Evil()}, handle)
    torch.save({"x": _Evil()}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(ArtifactError):
            load_checkpoint(p)
    assert not (tmp_path / "PWNED").exists()


def test_missing_file_and_mismatched_classes(tmp_path, tiny_info):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    model = build_model("fcn8s", tiny_info.num_classes, "aligned", TINY_WIDTH)
    ckpt = Checkpoint(tiny_info.replace(num_classes=7, class_names=[], palette=[]), model.state_dict())
    save_checkpoint(tmp_path / "mismatch.pt", ckpt)
    with pytest.raises(ArtifactError, match="7 classes"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_not_an_fcn_state_dict(tmp_path):
    torch.save({"layer.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match="not an FCN"):
        load_checkpoint(tmp_path / "other.pt")


def test_model_info_json_round_trip(tiny_info):
    assert ModelInfo.from_json(tiny_info.to_json()) == tiny_info
    with pytest.raises(ArtifactError):
        ModelInfo.from_dict({"arch": "resnet"})
