"""Build profiles: the shipped ones load and validate; bad ones fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_edge.engine.onnx_info import TensorFacts
from fcn_edge.engine.plan import BuildRefused, resolve_build_plan
from fcn_edge.engine.profiles import (ProfileError, available_profiles, load_profile, merge_options,
                                      shipped_profile_dir)
from tests.engine.conftest import make_facts

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("desktop-fp16", "desktop-int8", "orin-int8", "orin-nano-fp16", "xavier-dla-int8")


def test_shipped_profiles_load_validate_and_are_explained():
    dirs = [shipped_profile_dir()]
    assert set(SHIPPED) <= set(available_profiles(dirs))
    for name in SHIPPED:
        profile = load_profile(name, dirs)
        text = profile.path.read_text()
        assert text.count("\n#") >= 3, f"{name} should explain itself in comments"
        assert profile.description
        options = merge_options(profile, {})
        assert options.profile_name == name


def test_shipped_profiles_resolve_for_their_targets():
    dirs = [shipped_profile_dir()]
    fp32 = make_facts()
    qdq = make_facts(has_qdq=True)
    padded = make_facts(padded_deconvs=("upscore8",))
    assert resolve_build_plan("11.4", merge_options(load_profile("desktop-fp16", dirs), {}), fp32).transforms == ("fp16",)
    assert resolve_build_plan("10.3", merge_options(load_profile("desktop-int8", dirs), {}), qdq).builder_flags == ("INT8", "FP16")
    orin = resolve_build_plan("10.3", merge_options(load_profile("orin-int8", dirs), {}), qdq)
    assert orin.timing_cache and orin.timing_cache.endswith("export/orin.timing-cache")
    nano = merge_options(load_profile("orin-nano-fp16", dirs), {})
    assert nano.workspace_mib == 768 and nano.dla_core is None
    xavier = merge_options(load_profile("xavier-dla-int8", dirs), {"calib_cache": "calib/x.cache"})
    plan = resolve_build_plan("8.5", xavier, padded)
    assert plan.dla_core == 0 and plan.calibrator == "IInt8EntropyCalibrator2"
    assert plan.builder_flags == ("INT8", "FP16", "GPU_FALLBACK") and plan.transforms == ("unpad-deconv",)
    with pytest.raises(BuildRefused, match="--calib-cache"):
        resolve_build_plan("8.5", merge_options(load_profile("xavier-dla-int8", dirs), {}), padded)


def test_command_line_overrides_profile(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('precision = "int8"\nworkspace_mib = 512\ngpu_fallback = true\ndla_core = 1\n')
    profile = load_profile(str(path))
    options = merge_options(profile, {"precision": "fp16", "workspace_mib": None, "gpu_fallback": False})
    assert (options.precision, options.workspace_mib, options.gpu_fallback, options.dla_core) == ("fp16", 512, False, 1)


def test_profile_paths_are_relative_to_the_profile(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "p.toml"
    path.write_text('timing_cache = "../t.cache"\n')
    assert load_profile(str(path)).values["timing_cache"] == str((tmp_path / "t.cache").resolve())


BAD = [
    ('precison = "fp16"\n', "unknown key 'precison' (did you mean 'precision'?)"),
    ('precision = "fp8"\n', "precision = 'fp8' is not one of fp32, fp16, int8, best"),
    ("workspace_mib = \"lots\"\n", "workspace_mib = 'lots' must be an integer"),
    ("workspace_mib = 0\n", "workspace_mib = 0 must be at least 1"),
    ("gpu_fallback = 1\ndla_core = 0\n", "gpu_fallback = 1 must be true or false"),
    ("dla_core = true\n", "dla_core = True must be an integer"),
    ('hardware_compat = "turing+"\n', "is not one of none, ampere+"),
    ('min_shape = "1x3"\n', "give all three"),
    ('min_shape = "1 by 3"\nopt_shape = "1x3"\nmax_shape = "1x3"\n', "must look like 1x512x512x3"),
    ("exclude_lean_runtime = true\n", "--version-compatible"),
    ('precision = "fp16\n', "is not valid TOML"),
    ("description = 3\n", "description must be a string"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_bad_profiles_fail_precisely(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_shipped_profiles_are_package_data_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """--profile NAME works outside the repository; relative paths land in ./export, not in the package."""
    assert shipped_profile_dir() == REPO / "fcn_edge" / "export" / "profiles"
    monkeypatch.chdir(tmp_path)
    profile = load_profile("orin-int8")
    assert profile.path.parent == shipped_profile_dir()
    assert Path(profile.values["timing_cache"]) == (tmp_path / "export" / "orin.timing-cache").resolve()
    own = tmp_path / "export" / "profiles"
    own.mkdir(parents=True)
    (own / "orin-int8.toml").write_text('description = "mine"\nprecision = "fp16"\ntiming_cache = "x.cache"\n')
    mine = load_profile("orin-int8")  # a project's own profile of the same name wins
    assert mine.description == "mine" and Path(mine.values["timing_cache"]) == (own / "x.cache").resolve()


def test_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(ProfileError, match="did you mean 'orin-int8'.*available: desktop-fp16"):
        load_profile("orin-int9", [shipped_profile_dir()])
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("nowhere/x.toml")


def test_dynamic_profile_shapes_from_a_profile(tmp_path):
    path = tmp_path / "dyn.toml"
    path.write_text('min_shape = "1x256x256x3"\nopt_shape = "1x512x512x3"\nmax_shape = "2x512x512x3"\n')
    facts = make_facts(inputs=(TensorFacts("frames", ("n", "h", "w", 3), "uint8"),))
    plan = resolve_build_plan("10.3", merge_options(load_profile(str(path)), {}), facts)
    assert plan.profile[0].max == (2, 512, 512, 3)
