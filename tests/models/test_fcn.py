"""FCN family: shapes in both geometries, bilinear init, the port's keys and forward, VGG16 init."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from fcn_edge.models import MODEL_NAMES, build_model, init_from_vgg16, transfer_from
from fcn_edge.models.upsampling import bilinear_kernel
from fcn_edge.models.vgg import vgg16_key_map

from ..conftest import TINY_WIDTH

ODD_SIZES = [(1, 1), (33, 45), (97, 131), (64, 96), (127, 32)]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("geometry", ["paper", "aligned"])
def test_output_size_equals_input_size(name, geometry):
    model = build_model(name, num_classes=3, geometry=geometry, width=TINY_WIDTH).eval()
    with torch.no_grad():
        for h, w in ODD_SIZES:
            out = model(torch.randn(2, 3, h, w))
            assert out.shape == (2, 3, h, w), (name, geometry, h, w)


def test_aligned_geometry_has_no_crop_for_multiples_of_32():
    model = build_model("fcn8s", 4, "aligned", TINY_WIDTH).eval()
    feats = {}

    def record(name):
        def hook(module, inputs, output):
            feats[name] = tuple(output.shape)
        return hook

    for name in ("upscore2", "score_pool4", "upscore_pool4", "score_pool3"):
        getattr(model, name).register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    assert feats["upscore2"][2:] == feats["score_pool4"][2:] == (4, 6)  # exactly 1/16
    assert feats["upscore_pool4"][2:] == feats["score_pool3"][2:] == (8, 12)  # exactly 1/8


def test_aligned_does_about_half_the_work_of_paper_at_500():
    """The 100-pixel pad inflates every map: compare conv1_1 output areas as a proxy."""
    areas = {}
    for geometry in ("paper", "aligned"):
        model = build_model("fcn8s", 2, geometry, TINY_WIDTH).eval()
        seen = []
        model.conv3_1.register_forward_hook(lambda m, i, o: seen.append(o.shape[-2] * o.shape[-1]) and None)
        with torch.no_grad():
            model(torch.zeros(1, 3, 500, 500))
        areas[geometry] = seen[0]
    assert 0.35 < areas["aligned"] / areas["paper"] < 0.6


def test_geometries_share_weights():
    paper = build_model("fcn16s", 5, "paper", TINY_WIDTH)
    aligned = build_model("fcn16s", 5, "aligned", TINY_WIDTH)
    aligned.load_state_dict(paper.state_dict(), strict=True)
    paper.set_geometry("aligned")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(paper.eval()(x), aligned.eval()(x))


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_bilinear_init_reproduces_bilinear_upsampling(factor):
    channels = 3
    weight = bilinear_kernel(channels, 2 * factor)
    x = torch.randn(1, channels, 6, 7)
    up = F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    # Identical away from the borders (the transposed conv zero-pads, interpolate clamps).
    m = factor
    torch.testing.assert_close(up[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-5, rtol=1e-5)
    # and each channel only feeds itself
    assert torch.count_nonzero(weight[0, 1]) == 0


def test_upsampling_layers_start_bilinear_and_bias_free():
    model = build_model("fcn8s", 4, "paper", TINY_WIDTH)
    for layer in model.upsampling_layers():
        assert layer.bias is None
        torch.testing.assert_close(layer.weight, bilinear_kernel(4, layer.kernel_size[0]))
    assert torch.count_nonzero(model.score_fr.weight) == 0  # zero-initialised class scores


PORT_KEYS = {
    "fcn32s": ["upscore.weight"],
    "fcn16s": ["score_pool4.weight", "score_pool4.bias", "upscore2.weight", "upscore16.weight"],
    "fcn8s": ["score_pool3.weight", "score_pool3.bias", "score_pool4.weight", "score_pool4.bias",
              "upscore2.weight", "upscore8.weight", "upscore_pool4.weight"],
}


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_state_dict_keys_are_the_pytorch_ports(name):
    trunk = [f"conv{b}_{i}.{p}" for b, n in enumerate([2, 2, 3, 3, 3], 1) for i in range(1, n + 1)
             for p in ("weight", "bias")]
    trunk += ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias", "score_fr.weight", "score_fr.bias"]
    keys = set(build_model(name).state_dict()) if name == "fcn32s" else set(build_model(name, width=TINY_WIDTH).state_dict())
    assert keys == set(trunk + PORT_KEYS[name])


def _port_forward_fcn8s(sd, x, atonce=False):
    """An independent functional re-implementation of the PyTorch port's FCN8s.forward."""
    h = x
    pools = []
    for block, n in enumerate([2, 2, 3, 3, 3], 1):
        for i in range(1, n + 1):
            pad = 100 if (block, i) == (1, 1) else 1
            h = F.relu(F.conv2d(h, sd[f"conv{block}_{i}.weight"], sd[f"conv{block}_{i}.bias"], padding=pad))
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        pools.append(h)
    pool3, pool4 = pools[2], pools[3]
    h = F.relu(F.conv2d(h, sd["fc6.weight"], sd["fc6.bias"]))
    h = F.relu(F.conv2d(h, sd["fc7.weight"], sd["fc7.bias"]))
    h = F.conv2d(h, sd["score_fr.weight"], sd["score_fr.bias"])
    up2 = F.conv_transpose2d(h, sd["upscore2.weight"], stride=2)
    s4 = F.conv2d(pool4 * (0.01 if atonce else 1), sd["score_pool4.weight"], sd["score_pool4.bias"])
    s4 = s4[:, :, 5:5 + up2.size(2), 5:5 + up2.size(3)]
    up4 = F.conv_transpose2d(up2 + s4, sd["upscore_pool4.weight"], stride=2)
    s3 = F.conv2d(pool3 * (0.0001 if atonce else 1), sd["score_pool3.weight"], sd["score_pool3.bias"])
    s3 = s3[:, :, 9:9 + up4.size(2), 9:9 + up4.size(3)]
    out = F.conv_transpose2d(up4 + s3, sd["upscore8.weight"], stride=8)
    return out[:, :, 31:31 + x.size(2), 31:31 + x.size(3)]


@pytest.mark.parametrize("name", ["fcn8s", "fcn8s-atonce"])
def test_paper_geometry_matches_the_ports_forward(name):
    torch.manual_seed(1)
    model = build_model(name, 6, "paper", TINY_WIDTH).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    # a port-style state_dict loads strictly into a fresh model
    fresh = build_model(name, 6, "paper", TINY_WIDTH).eval()
    fresh.load_state_dict(sd, strict=True)
    x = torch.randn(1, 3, 75, 53)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), _port_forward_fcn8s(sd, x, atonce=name.endswith("atonce")))


def _tiny_torchvision_vgg16(width):
    """A synthetic state_dict in torchvision's vgg16 layout at a given width."""
    chans = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    sd, cin = {}, 3
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    for idx, c in zip(indices, chans):
        c = max(1, round(c * width))
        sd[f"features.{idx}.weight"] = torch.randn(c, cin, 3, 3)
        sd[f"features.{idx}.bias"] = torch.randn(c)
        cin = c
    fc = max(1, round(4096 * width))
    sd["classifier.0.weight"] = torch.randn(fc, cin * 7 * 7)
    sd["classifier.0.bias"] = torch.randn(fc)
    sd["classifier.3.weight"] = torch.randn(fc, fc)
    sd["classifier.3.bias"] = torch.randn(fc)
    sd["classifier.6.weight"] = torch.randn(1000, fc)
    sd["classifier.6.bias"] = torch.randn(1000)
    return sd


def test_vgg16_key_mapping_and_fc_reshape(tmp_path):
    vgg = _tiny_torchvision_vgg16(TINY_WIDTH)
    path = tmp_path / "vgg16-tiny.pth"
    torch.save(vgg, path)
    model = build_model("fcn32s", 3, "paper", TINY_WIDTH)
    loaded = init_from_vgg16(model, path)
    assert len(loaded) == 30 and len(vgg16_key_map()) == 30
    sd = model.state_dict()
    torch.testing.assert_close(sd["conv3_2.weight"], vgg["features.12.weight"])
    torch.testing.assert_close(sd["conv5_3.bias"], vgg["features.28.bias"])
    fc6 = sd["fc6.weight"]
    assert fc6.shape[2:] == (7, 7)
    # fc6 as a conv over a 7x7 map equals the Linear layer on the flattened map
    feat = torch.randn(1, fc6.shape[1], 7, 7)
    conv = F.conv2d(feat, fc6, sd["fc6.bias"]).flatten()
    linear = F.linear(feat.flatten(1), vgg["classifier.0.weight"], vgg["classifier.0.bias"]).flatten()
    torch.testing.assert_close(conv, linear, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sd["fc7.weight"][:, :, 0, 0], vgg["classifier.3.weight"])


def test_vgg16_missing_file_says_where_to_get_it(tmp_path):
    from fcn_edge.errors import ArtifactError

    with pytest.raises(ArtifactError, match="vgg16-397923af.pth"):
        init_from_vgg16(build_model("fcn32s", 3, width=TINY_WIDTH), tmp_path / "nope.pth")


def test_vgg16_wrong_width_is_a_clear_error(tmp_path):
    from fcn_edge.errors import ArtifactError

    with pytest.raises(ArtifactError, match="width"):
        init_from_vgg16(build_model("fcn32s", 3, width=TINY_WIDTH), _tiny_torchvision_vgg16(1 / 8))


def test_staged_transfer_32_16_8():
    s32 = build_model("fcn32s", 4, width=TINY_WIDTH)
    with torch.no_grad():
        for p in s32.parameters():
            p.add_(1.0)
    s16 = build_model("fcn16s", 4, width=TINY_WIDTH)
    copied = transfer_from(s16, s32)
    assert "fc7.weight" in copied and "score_fr.bias" in copied
    assert not any(k.startswith("upscore") for k in copied)
    torch.testing.assert_close(s16.fc7.weight, s32.fc7.weight)
    assert torch.count_nonzero(s16.score_pool4.weight) == 0
    s8 = build_model("fcn8s", 4, width=TINY_WIDTH)
    copied = transfer_from(s8, s16)
    assert "score_pool4.weight" in copied and "upscore2.weight" in copied


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("fcn4s")
    with pytest.raises(ValueError, match="geometry"):
        build_model("fcn8s", geometry="weird")
    with pytest.raises(ValueError, match="width"):
        build_model("fcn8s", width=0)


def test_forward_padded_is_pad_run_crop_at_any_size():
    """Equal to forward at multiples of 32; elsewhere to padding by hand, running, cropping."""
    model = build_model("fcn8s", num_classes=3, geometry="aligned", width=TINY_WIDTH).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 96)
        torch.testing.assert_close(model.forward_padded(x), model(x))
        for h, w in [(33, 45), (127, 32)]:
            x = torch.randn(1, 3, h, w)
            padded = F.pad(x, (0, (-w) % 32, 0, (-h) % 32))
            expected = model(padded)[:, :, :h, :w]  # a multiple of 32: forward takes no padding branch
            out = model.forward_padded(x)
            assert out.shape == (1, 3, h, w)
            torch.testing.assert_close(out, expected)
            torch.testing.assert_close(model(x), expected)


def test_forward_padded_is_for_aligned_geometry_only():
    with pytest.raises(ValueError, match="aligned"):
        build_model("fcn8s", 3, "paper", TINY_WIDTH).forward_padded(torch.randn(1, 3, 32, 32))
