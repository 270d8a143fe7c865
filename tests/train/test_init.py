"""Initial weights: previous stages, the port's bare state_dicts, VGG16 layout, class-count checks."""

from __future__ import annotations

import pytest
import torch

from fcn_edge.checkpoint import load_checkpoint, save_model
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing
from fcn_edge.models import build_model
from fcn_edge.models.vgg import vgg16_key_map
from fcn_edge.train import train

from tests.conftest import TINY_WIDTH

from .conftest import quick_config


def _random_model(arch, classes, seed=1):
    torch.manual_seed(seed)
    model = build_model(arch, classes, "aligned", TINY_WIDTH)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def test_staged_training_copies_the_previous_stage(synth_small, tmp_path):
    stage32 = _random_model("fcn32s", 5)
    info = ModelInfo(arch="fcn32s", num_classes=5, geometry="aligned", width=TINY_WIDTH,
                     preprocessing=Preprocessing.caffe())
    source = save_model(tmp_path / "fcn32s.pt", stage32, info)
    result = train(quick_config(synth_small, tmp_path / "16s", arch="fcn16s", init_from=str(source), iterations=1,
                                lr=1e-12, val_split=None, width=None))
    ckpt = load_checkpoint(result.last_path)
    assert ckpt.info.arch == "fcn16s" and ckpt.info.width == TINY_WIDTH
    assert ckpt.info.preprocessing == Preprocessing.caffe()  # follows the weights it started from
    assert ckpt.info.class_names[1] == "disc" and ckpt.info.input_size == (64, 64)
    assert ckpt.training["init"]["kind"] == "checkpoint" and "score_pool4.weight" in ckpt.training["init"]["fresh"]
    # at lr 1e-12 one step changes nothing visible: the trunk is the 32s one
    torch.testing.assert_close(ckpt.state_dict["conv3_1.weight"], stage32.state_dict()["conv3_1.weight"])
    assert ckpt.state_dict["score_pool4.weight"].abs().max() < 1e-6  # new layer: zero-initialised


def test_class_count_mismatch_is_refused_unless_reinit(synth_small, tmp_path):
    port = tmp_path / "fcn8s_from_caffe.pth"
    voc = _random_model("fcn8s", 21)
    torch.save(voc.state_dict(), port)  # the PyTorch port's bare state_dict: 21 VOC classes
    with pytest.raises(ArtifactError, match="21 classes but the data has 5.*--reinit-classifier"):
        train(quick_config(synth_small, tmp_path / "a", init_from=str(port), width=None, iterations=1))
    result = train(quick_config(synth_small, tmp_path / "b", init_from=str(port), width=None, iterations=1,
                                reinit_classifier=True, lr=1e-12, val_split=None))
    ckpt = load_checkpoint(result.last_path)
    assert ckpt.info.num_classes == 5 and ckpt.info.preprocessing == Preprocessing.caffe()
    torch.testing.assert_close(ckpt.state_dict["fc7.weight"], voc.state_dict()["fc7.weight"])
    assert ckpt.state_dict["score_fr.weight"].shape[0] == 5


def test_vgg16_layout_initialises_the_trunk(synth_small, tmp_path):
    target = build_model("fcn8s", 5, "aligned", TINY_WIDTH)
    shapes = target.state_dict()
    vgg = {}
    torch.manual_seed(2)
    for src, dst in vgg16_key_map().items():
        numel = shapes[dst].numel()
        shape = (shapes[dst].shape[0], numel // shapes[dst].shape[0]) if src.startswith("classifier") and \
            src.endswith("weight") else tuple(shapes[dst].shape)
        vgg[src] = torch.randn(shape)
    path = tmp_path / "vgg16-tiny.pth"
    torch.save(vgg, path)
    # --vgg16 is for full-width weights; the config check says so before anything loads
    with pytest.raises(Exception, match="full width"):
        train(quick_config(synth_small, tmp_path / "x", vgg16=str(path)))
    from fcn_edge.train.config import resolve_config
    from fcn_edge.train.init import ClassFacts, initial_model

    resolved = resolve_config(quick_config(synth_small, tmp_path / "y", width=None, vgg16=str(path)))
    resolved.deploy_size = (64, 64)
    resolved.config.width = TINY_WIDTH  # a tiny stand-in for the 528 MB file: same layout, 1/16 the channels
    start = initial_model(resolved, ClassFacts(5, [], []))
    state = start.model.state_dict()
    torch.testing.assert_close(state["conv1_1.weight"], vgg["features.0.weight"])
    torch.testing.assert_close(state["fc6.weight"], vgg["classifier.0.weight"].reshape(state["fc6.weight"].shape))
    assert start.info.preprocessing == Preprocessing.imagenet() and start.source["kind"] == "vgg16"
