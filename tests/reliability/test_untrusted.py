"""Files from elsewhere: checkpoints never run code, ONNX external data stays in the model's folder,
environment variables are not trusted as paths, exported ONNX files carry no paths of the exporting machine.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, assert_one_line_error

MARKER = "PWNED_BY_CHECKPOINT"


class _RunsCode:
    """Pickled, this calls os.system on load -- if anything loads it without weights_only."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def evil_checkpoints(tmp_path_factory):
    """A torch.save zip whose state_dict holds an object that runs a command, and a legacy raw pickle of the same."""
    import torch

    folder = tmp_path_factory.mktemp("rel-evil")
    zipped = folder / "evil_zip.pt"
    torch.save({"format": "fcn-edge-checkpoint", "format_version": 1, "state_dict": {"x": _RunsCode()}}, zipped)
    legacy = folder / "evil_legacy.pth"
    with open(legacy, "wb") as handle:
        pickle.dump({"state_dict": _RunsCode()}, handle, protocol=2)
    return {"zip": zipped, "legacy": legacy}


ENTRY_POINTS = {
    "eval": lambda m, d: ["eval", m, "--data", d],
    "export": lambda m, d: ["export", m, "-o", "out.onnx", "--no-verify"],
    "run": lambda m, d: ["run", m, "--source", "0"],
    "bench": lambda m, d: ["bench", m, "-n", "1"],
    "train --init-from": lambda m, d: ["train", "--data", d, "--init-from", m, "--out", "run", "--iterations", "1",
                                                  "--batch-size", "2"],
    "train --resume": lambda m, d: ["train", "--resume", m, "--iterations", "1"],
    "train --vgg16": lambda m, d: ["train", "--data", d, "--vgg16", m, "--out", "run", "--iterations", "1",
                                   "--batch-size", "2"],
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_checkpoints_never_run_code_through_the_cli(run_cli, evil_checkpoints, tiny_data, tmp_path, entry):
    """torch.save's format at every entry point (the legacy pickle takes the same loader: in-process below)."""
    model = evil_checkpoints["zip"]
    completed = run_cli(*ENTRY_POINTS[entry](model, tiny_data), cwd=tmp_path)
    assert_one_line_error(completed, model.name, "code rather than weights")
    assert not (tmp_path / MARKER).exists(), "loading a checkpoint ran code from it"
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_checkpoints_never_run_code_in_process(evil_checkpoints, tmp_path, monkeypatch, kind):
    """load_checkpoint, the torch runtime backend (Segmenter/bench/eval open .pt files through it), the VGG16 loader."""
    from fcn_edge.checkpoint import load_checkpoint
    from fcn_edge.errors import ArtifactError
    from fcn_edge.models.vgg import load_vgg16_state_dict
    from fcn_edge.runtime import open_runner

    monkeypatch.chdir(tmp_path)
    model = evil_checkpoints[kind]
    for load in (load_checkpoint, open_runner, load_vgg16_state_dict):
        with pytest.raises(ArtifactError, match=re.escape(model.name)) as info:
            load(model)
        assert "weights_only=False" not in str(info.value)  # never advise the unsafe way out
    assert not (tmp_path / MARKER).exists()


# ---------------------------------------------------------------------------- ONNX external data
@pytest.fixture(scope="module")
def external_onnx(tiny_onnx, tmp_path_factory):
    """The tiny export with its weights in ``weights.bin`` beside it (legitimate external data), and
    hostile copies whose ``location`` points at ../../etc/passwd, /etc/passwd, or a symlink to it."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    root = tmp_path_factory.mktemp("rel-external")
    good_dir = root / "good"
    good_dir.mkdir()
    model = onnx.load(str(tiny_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)
    onnx.save(model, str(good_dir / "model.onnx"))
    files = {"good": good_dir / "model.onnx"}

    def hostile(name: str, location: str, link: bool = False) -> Path:
        folder = root / name / "a" / "b"
        folder.mkdir(parents=True)
        copy = onnx.load(str(good_dir / "model.onnx"), load_external_data=False)
        tensor = next(t for t in copy.graph.initializer if t.external_data)
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
        if link:
            os.symlink("/etc/passwd", folder / location)
        shutil.copy(good_dir / "weights.bin", folder / "weights.bin") if not link else None
        path = folder / "model.onnx"
        onnx.save(copy, str(path))
        return path

    files["dotdot"] = hostile("dotdot", "../../../../../../etc/passwd")
    files["absolute"] = hostile("absolute", "/etc/passwd")
    files["symlink"] = hostile("symlink", "passwd_link.bin", link=True)
    missing = root / "missing"
    missing.mkdir()
    shutil.copy(good_dir / "model.onnx", missing / "model.onnx")  # weights.bin not copied along
    files["missing"] = missing / "model.onnx"
    return files


HOSTILE = {"dotdot": "outside the model's folder", "absolute": "absolute path", "symlink": "outside the model's folder"}


def _readers():
    from fcn_edge.engine.onnx_info import load_onnx
    from fcn_edge.export import lint_onnx, read_onnx_header, read_onnx_metadata
    from fcn_edge.runtime import open_runner

    return {"read_onnx_header": read_onnx_header, "read_onnx_metadata": read_onnx_metadata,
            "build-engine load_onnx": load_onnx, "export lint": lint_onnx, "ONNX Runtime backend": open_runner}


@pytest.mark.parametrize("reader", ["read_onnx_header", "read_onnx_metadata", "build-engine load_onnx", "export lint",
                                    "ONNX Runtime backend"])
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_external_data_outside_the_folder_is_refused_by_every_reader(external_onnx, kind, reader):
    from fcn_edge.errors import ArtifactError

    with pytest.raises(ArtifactError) as info:
        _readers()[reader](external_onnx[kind])
    message = str(info.value)
    assert HOSTILE[kind] in message and "model.onnx" in message and "\n" not in message
    assert "root:" not in message  # nothing of the target file leaks into the message


@pytest.mark.parametrize("command", ["eval", "calibrate", "build-engine", "run", "triton-repo"])
def test_external_data_outside_the_folder_is_refused_by_every_command(run_cli, external_onnx, tiny_data, tmp_path,
                                                                      command):
    model = external_onnx["dotdot"]
    argv = {"eval": ["eval", model, "--data", tiny_data],
            "calibrate": ["calibrate", model, "--images", tiny_data, "-o", tmp_path / "q.onnx"],
            "build-engine": ["build-engine", model, "--dry-run", "--trt-version", "10.3"],
            "run": ["run", model, "--source", "0"],
            "triton-repo": ["triton-repo", model, "-o", tmp_path / "repo"]}[command]
    assert_one_line_error(run_cli(*argv, cwd=tmp_path), "model.onnx", "outside the model's folder")
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "repo").exists()


def test_legitimate_external_data_still_works_and_travels(external_onnx, tmp_path):
    import numpy as np

    from fcn_edge.errors import ArtifactError
    from fcn_edge.export import read_onnx_metadata
    from fcn_edge.runtime import open_runner
    from fcn_edge.serve.repo import RepoConfig, write_repository

    good = external_onnx["good"]
    info, facts = read_onnx_metadata(good)
    with open_runner(good) as runner:
        result = runner.infer(np.zeros((1, *facts.size, 3), np.uint8))
    assert result.labels.shape == (1, *facts.size)
    written = write_repository([good], RepoConfig(output=tmp_path / "repo"))
    assert (written[0].folder / "1" / "weights.bin").read_bytes() == (good.parent / "weights.bin").read_bytes()
    with pytest.raises(ArtifactError, match="weights.bin.*missing"):
        open_runner(external_onnx["missing"])


# ---------------------------------------------------------------------------- exported files
def test_exported_onnx_carries_no_paths_of_the_exporting_machine(tiny_onnx):
    """tiny_onnx is `fcn-edge export`'s default output: the dynamo exporter's stack traces are stripped."""
    import onnx

    data = tiny_onnx.read_bytes()
    assert str(REPO_ROOT).encode() not in data and b"site-packages" not in data
    model = onnx.load(str(tiny_onnx))
    keys = {p.key for n in model.graph.node for p in n.metadata_props}
    keys |= {p.key for p in model.graph.metadata_props}
    keys |= {p.key for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.initializer)
             for p in v.metadata_props}
    assert not {k for k in keys if k.startswith("pkg.") or k == "namespace"}, keys
    assert [n.name for n in model.graph.node if n.op_type == "ConvTranspose"][0].startswith("/")  # named by module
    assert any(p.key == "fcn_edge.model" for p in model.metadata_props)


def test_keep_debug_metadata_keeps_them(tiny_checkpoint, tmp_path):
    """``fcn-edge export --keep-debug-metadata`` is ExportConfig.keep_debug_metadata=True."""
    import onnx

    from fcn_edge.cli import build_parser
    from fcn_edge.export.command import _config
    from tests.onnx_models import export_checkpoint

    parse = build_parser().parse_args
    assert _config(parse(["export", "m.pt", "--keep-debug-metadata"])).keep_debug_metadata is True
    assert _config(parse(["export", "m.pt"])).keep_debug_metadata is False

    out = export_checkpoint(tiny_checkpoint, tmp_path / "debug.onnx", keep_debug_metadata=True)
    model = onnx.load(str(out))
    traces = [p.value for n in model.graph.node for p in n.metadata_props if p.key == "pkg.torch.onnx.stack_trace"]
    assert traces and any("graph.py" in t for t in traces)


# ---------------------------------------------------------------------------- environment
# Every read of the environment in fcn_edge/, with why it is safe.  A new one fails this test
# until it is reviewed and listed: no path taken from the environment is opened unchecked.
REVIEWED_ENVIRONMENT_READS = {
    ("cli.py", "FCN_EDGE_DEBUG"): "a flag compared with '1'",
    ("threads.py", "GOMP_SPINCOUNT"): "setdefault of a spin count for the OpenMP runtime, never read",
    ("progress.py", "FCN_EDGE_PROGRESS"): "a flag: progress bars on/off",
    ("progress.py", "FCN_EDGE_PROGRESS_INTERVAL"): "a number of seconds (float(), default when invalid/negative)",
    ("train/command.py", "RANK"): "compared with '0' only",
    ("train/distributed.py", "RANK"): "torchrun's integers, parsed by _env_int (one-line error otherwise)",
    ("train/distributed.py", "WORLD_SIZE"): "as RANK",
    ("train/distributed.py", "LOCAL_RANK"): "as RANK",
    ("train/distributed.py", "MASTER_ADDR"): "only quoted in an error message",
    ("train/distributed.py", "MASTER_PORT"): "only quoted in an error message",
    ("stream/sources.py", "OPENCV_FFMPEG_CAPTURE_OPTIONS"): "setdefault of FFmpeg options for RTSP, never read",
    ("stream/sinks.py", "DISPLAY"): "a flag: is there a screen",
    ("stream/sinks.py", "WAYLAND_DISPLAY"): "as DISPLAY",
    ("serve/environment.py", "LD_LIBRARY_PATH"): "passed on to the Triton stub / ldd (library search path), no "
                                                 "file is opened from it by fcn-edge",
    # cuda_ctypes also reads CUDA_HOME / CUDA_PATH and FCN_EDGE_CUDART (through names the pattern below
    # cannot see): the same kind of search path, and the user's explicit choice of libcudart.
    ("runtime/cuda_ctypes.py", "LD_LIBRARY_PATH"): "folders searched for libcudart.so* only, as the dynamic loader "
                                                   "itself would; the environment is the user's own (no privilege "
                                                   "boundary), and nothing else is opened from it",
}


def test_every_environment_read_is_reviewed():
    found = set()
    pattern = re.compile(r"""(?:os\.environ(?:\.get|\.setdefault|\.pop)?\s*[\[(]\s*|getenv\(\s*)["']([A-Z_]+)["']""")
    for path in sorted((REPO_ROOT / "fcn_edge").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in pattern.findall(text):
            found.add((path.relative_to(REPO_ROOT / "fcn_edge").as_posix(), name))
        indirect = re.findall(r"os\.environ(?!\.get|\.setdefault|\.pop|\s*\[|\[)", text)
        if indirect:
            found.add((path.relative_to(REPO_ROOT / "fcn_edge").as_posix(), "<whole environment>"))
    allowed = set(REVIEWED_ENVIRONMENT_READS) | {
        ("serve/environment.py", "<whole environment>"),   # copied for the ldd child process
        ("train/distributed.py", "<whole environment>"),   # "RANK" in os.environ: membership only
        ("threads.py", "<whole environment>"),             # "OMP_WAIT_POLICY" in os.environ: membership only
        # copied for ROS 2 child processes with the Fast DDS profile set and UDP-forcing variables
        # removed; of its values only LD_LIBRARY_PATH is read (split, passed on), no file is opened from it
        ("ros2/environment.py", "<whole environment>"),
    }
    assert found <= allowed, f"review these environment reads and list them: {sorted(found - allowed)}"
