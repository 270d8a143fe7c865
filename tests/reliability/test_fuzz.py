"""Random and mutated input into every parser of outside data: an FcnEdgeError subclass or a result, nothing else.

Image/mask readers and list files are fuzzed in tests/data/test_fuzz.py; here: build
profiles (TOML), engine sidecars (JSON), the ONNX header reader and the metadata JSON,
both calibration-cache parsers and the source-string parser.  Bounded: 60-80 examples
each, no deadline (a shared CPU), reproducible in CI (see tests/fuzzing.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fcn_edge.errors import FcnEdgeError  # noqa: E402
from tests.fuzzing import fuzz_settings  # noqa: E402

FUZZ = fuzz_settings(80)
SOME = fuzz_settings(60)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)


def _mutate(data, draw, depth: int = 0):
    """Replace, drop or retype some entries of a JSON-like tree (the shape of a real file, broken in places)."""
    if isinstance(data, dict) and data:
        data = dict(data)
        for key in list(data):
            choice = draw(st.integers(0, 9))
            if choice == 0:
                del data[key]
            elif choice == 1:
                data[key] = draw(json_value)
            elif choice < 5 and depth < 4:
                data[key] = _mutate(data[key], draw, depth + 1)
        return data
    if isinstance(data, list) and data:
        return [_mutate(v, draw, depth + 1) if draw(st.booleans()) else draw(json_value) for v in data]
    return draw(json_value) if draw(st.integers(0, 3)) == 0 else data


# ---------------------------------------------------------------------------- build profiles (TOML)
toml_scalar = st.one_of(st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=30), st.sampled_from(["fp16", "int8", "best", "1x64x64x3", "frames:1x8x8x3",
                                                               "ampere+", "../x.cache", "/abs/path", "\x00"]))
PROFILE_KEYS = ["precision", "workspace_mib", "timing_cache", "min_shape", "opt_shape", "max_shape", "dla_core",
                "gpu_fallback", "version_compatible", "exclude_lean_runtime", "hardware_compat", "calib",
                "calib_cache", "description", "unknown_key", "precison"]


def _read_or_clean_error(tmp_path_factory, name: str, data: bytes, reader) -> None:
    """Write ``data`` to a file called ``name`` and read it: any outcome but FcnEdgeError fails."""
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    try:
        reader(path)
    except FcnEdgeError:
        pass


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)  # a TOML basic string (JSON escapes are TOML escapes, \u0000 included)


@st.composite
def profile_texts(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=200))  # not TOML at all, usually
    lines = []
    for key in draw(st.lists(st.sampled_from(PROFILE_KEYS), max_size=8, unique=True)):
        value = draw(st.one_of(toml_scalar, st.lists(st.integers(0, 9), max_size=3)))
        text = "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else _toml_value(value)
        lines.append(f"{key} = {text}")
    if draw(st.booleans()):
        lines.append(f"[{draw(st.sampled_from(['table', 'precision']))}]\nx = 1")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=profile_texts())
def test_build_profile_loader(tmp_path_factory, text):
    from fcn_edge.engine.profiles import load_profile

    path = tmp_path_factory.mktemp("profile") / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        profile = load_profile(str(path))
    except FcnEdgeError:
        return
    assert profile.path == path


@SOME
@given(data=st.binary(max_size=300))
def test_build_profile_loader_on_bytes(tmp_path_factory, data):
    from fcn_edge.engine.profiles import load_profile

    _read_or_clean_error(tmp_path_factory, "bytes.toml", data, lambda path: load_profile(str(path)))


# ---------------------------------------------------------------------------- engine sidecars (JSON)
def _valid_sidecar() -> dict:
    from tests.engine.test_sidecar import sidecar_dict

    return sidecar_dict()


@FUZZ
@given(data=st.data())
def test_sidecar_parser_and_check(data):
    from fcn_edge.artifacts.gpu import GpuInfo
    from fcn_edge.artifacts.sidecar import RuntimeEnvironment, check_sidecar, load_settings, parse_sidecar
    from fcn_edge.artifacts.trt_versions import parse_trt_version

    sidecar = _mutate(copy.deepcopy(_valid_sidecar()), data.draw)
    try:
        parsed = parse_sidecar(sidecar)
        env = RuntimeEnvironment(parse_trt_version("8.6.2"), GpuInfo("Orin", (8, 7), integrated=True))
        report = check_sidecar(parsed, env, engine_bytes=b"engine")
        report.raise_for_errors("fuzz.engine")
        load_settings(parsed)
        parsed.describe()
    except FcnEdgeError:
        pass


@SOME
@given(data=st.binary(max_size=400))
def test_sidecar_reader_on_bytes(tmp_path_factory, data):
    from fcn_edge.artifacts.sidecar import read_sidecar

    _read_or_clean_error(tmp_path_factory, "m.engine.json", data, read_sidecar)


# ---------------------------------------------------------------------------- ONNX header and metadata
@pytest.fixture(scope="module")
def small_onnx_bytes(tmp_path_factory):
    """A small real ONNX file with fcn-edge metadata (its header is what gets mutated)."""
    from tests.engine.onnx_models import make_head_onnx

    path = make_head_onnx(tmp_path_factory.mktemp("fuzz-onnx") / "head.onnx")
    return Path(path).read_bytes()


@FUZZ
@given(data=st.data())
def test_onnx_header_reader(tmp_path_factory, small_onnx_bytes, data):
    from fcn_edge.export import read_onnx_header, read_onnx_metadata

    blob = bytearray(small_onnx_bytes)
    mode = data.draw(st.sampled_from(["random", "truncate", "flip", "splice"]))
    if mode == "random":
        blob = bytearray(data.draw(st.binary(max_size=500)))
    elif mode == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif mode == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            index = data.draw(st.integers(0, len(blob) - 1))
            blob[index] = data.draw(st.integers(0, 255))
    else:
        at = data.draw(st.integers(0, len(blob)))
        blob[at:at] = data.draw(st.binary(min_size=1, max_size=40))
    path = tmp_path_factory.mktemp("onnx") / "fuzz.onnx"
    path.write_bytes(bytes(blob))
    try:
        header = read_onnx_header(path)
        read_onnx_metadata(path)
    except FcnEdgeError:
        return
    assert header.has_graph


@pytest.fixture(scope="module")
def valid_metadata(small_onnx_bytes, tmp_path_factory):
    from fcn_edge.export import EXPORT_KEY, MODEL_KEY, read_onnx_header

    path = tmp_path_factory.mktemp("meta") / "m.onnx"
    path.write_bytes(small_onnx_bytes)
    header = read_onnx_header(path)
    return {MODEL_KEY: json.loads(header.metadata[MODEL_KEY]), EXPORT_KEY: json.loads(header.metadata[EXPORT_KEY])}


@FUZZ
@given(data=st.data())
def test_metadata_json_parser(valid_metadata, data):
    from fcn_edge.export import EXPORT_KEY, MODEL_KEY, parse_metadata_props

    props = {}
    for key in (MODEL_KEY, EXPORT_KEY):
        kind = data.draw(st.sampled_from(["mutated", "text", "absent", "valid"]))
        if kind == "mutated":
            props[key] = json.dumps(_mutate(copy.deepcopy(valid_metadata[key]), data.draw))
        elif kind == "text":
            props[key] = data.draw(st.text(max_size=80))
        elif kind == "valid":
            props[key] = json.dumps(valid_metadata[key])
    try:
        info, facts = parse_metadata_props(props, "fuzz.onnx")
    except FcnEdgeError:
        return
    if facts is not None:  # what the readers then do with a description that parsed
        facts.input_shape()
        facts.profile("min"), facts.profile("max")
        info.to_json()


# ---------------------------------------------------------------------------- calibration caches
@st.composite
def cache_texts(draw):
    if draw(st.booleans()):
        return draw(st.text(max_size=200))
    header = draw(st.sampled_from(["TRT-8502-EntropyCalibration2", "TRT-100300-MinMaxCalibration", "TRT--x", "",
                                   "TRT-1-"]))
    lines = [header]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.text(max_size=12))
        value = draw(st.one_of(st.sampled_from(["3c8b4396", "ffffffff", "0", "123456789", "zz"]), st.text(max_size=9)))
        lines.append(f"{name}{draw(st.sampled_from([': ', ':', ' ']))}{value}")
    return "\n".join(lines)


@FUZZ
@given(text=cache_texts())
def test_calibration_cache_parsers(tmp_path_factory, text):
    from fcn_edge.calib.trt_cache import read_cache
    from fcn_edge.engine.build import read_calibration_cache_header

    path = tmp_path_factory.mktemp("cache") / "m.calib.cache"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for parse in (read_cache, read_calibration_cache_header):
        try:
            parse(path)
        except FcnEdgeError:
            pass


# ---------------------------------------------------------------------------- source strings
source_texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, rest: f"{scheme}{rest}",
              st.sampled_from(["", "csi://", "v4l2://", "rtsp://", "http://", "https://", "gst:", "file://", "/dev/",
                               "/dev/video", "~", "udp://", "CSI://", "Gst://"]),
              st.text(max_size=25)),
)


@FUZZ
@given(text=source_texts)
@example(text="~\x00")  # once reached os.path.expanduser and raised ValueError (CI, stop 12)
@example(text="/dev/video0\x00")
@example(text="csi://0\n")
def test_source_string_parser(text):
    from fcn_edge.stream.sources import SourceSpec, parse_source

    try:
        spec = parse_source(text)
    except FcnEdgeError:
        return
    assert isinstance(spec, SourceSpec) and spec.kind
    spec.display_name
