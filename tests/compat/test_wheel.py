"""README's deploy claims, proven from a built wheel in fresh environments, outside the checkout.

Two environments on this interpreter's Python, resolved as a user's pip would (no dev caps:
whatever numpy and OpenCV pip picks today for these requirements):

* **user**: ``pip install fcn_edge.whl[onnx]`` (plus ``[opencv]`` where OpenCV is an extra):
  what README tells a machine without TensorRT to install.  There: ``--help``, ``doctor``,
  ``info``, ``run`` on a video into a video with ``--stats-json``, ``bench``, the Python
  API, and build-engine's plan with a packaged build profile.  torch must be absent, and
  the labels must equal this (development) environment's.
* **core**: ``pip install fcn_edge.whl`` alone, what a Jetson that runs engines with
  JetPack's TensorRT installs.  ``--help``, ``doctor``, ``info`` on an ONNX and on an
  engine's sidecar work; ``run`` on an ONNX says in one line which extra to install.

Commands run in a folder outside the checkout, with the environment's ``bin/`` first on
PATH and no PYTHONPATH, so only the installed package can answer.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from tests.compat import venvs
from tests.onnx_models import moving_frames

pytestmark = venvs.skip_when_asked


def wheel_extras(wheel) -> set[str]:
    """The extras the wheel's metadata declares (``Provides-Extra``)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Provides-Extra:")}


@pytest.fixture(scope="session")
def user_env(venvs_root, fcn_edge_wheel, base_python):
    extras = "onnx,opencv" if "opencv" in wheel_extras(fcn_edge_wheel) else "onnx"
    venv = venvs.Venv.create(venvs_root / "user", base_python)
    venv.pip_install("--no-compile", f"{fcn_edge_wheel}[{extras}]")
    return venv


@pytest.fixture(scope="session")
def core_env(venvs_root, fcn_edge_wheel, base_python):
    venv = venvs.Venv.create(venvs_root / "core", base_python)
    venv.pip_install("--no-compile", str(fcn_edge_wheel))
    return venv


@pytest.fixture(scope="session")
def deploy_folder(outside_repo, tiny_onnx, sample_video):
    """What a user copies to a device: the ONNX and a clip, in a folder outside the checkout."""
    folder = outside_repo / "deploy"
    folder.mkdir()
    shutil.copy2(tiny_onnx, folder / "model.onnx")
    shutil.copy2(sample_video, folder / "clip.mp4")
    return folder


def ok(completed) -> str:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed.stdout


def test_user_install_is_the_wheel_without_torch(user_env, deploy_folder):
    where = ok(user_env.run("python", "-c", "import fcn_edge; print(fcn_edge.__file__)", cwd=deploy_folder))
    assert str(user_env.path) in where and str(venvs.REPO_ROOT) not in where
    assert not user_env.finds_module("torch")
    found = user_env.versions("fcn-edge", "numpy", "onnxruntime", "onnx", "opencv-python-headless", "torch")
    assert found["onnxruntime"] and found["onnx"] and found["torch"] is None, found
    assert user_env.finds_module("cv2"), found
    print("user environment:", found)


def test_user_commands_from_the_wheel(user_env, deploy_folder, tmp_path):
    """--help, doctor, info, run (video in, video and stats out) and bench, as README shows them."""
    out = tmp_path / "run"
    out.mkdir()
    assert "build-engine" in ok(user_env.run("fcn-edge", "--help", cwd=out))
    doctor = json.loads(ok(user_env.run("fcn-edge", "doctor", "--json", "-", cwd=out)))
    assert doctor["commands"]["run (.onnx)"] == [], doctor["commands"]
    info = ok(user_env.run("fcn-edge", "info", deploy_folder / "model.onnx", cwd=out))
    assert "5 classes" in info and "frames uint8" in info
    ok(user_env.run("fcn-edge", "run", deploy_folder / "model.onnx", "--source", deploy_folder / "clip.mp4",
                    "--sink", "out.mp4", "--stats-json", "stats.json", cwd=out))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"]["processed"] == 12, stats
    assert (out / "out.mp4").stat().st_size > 0
    frames = ok(user_env.run("python", "-c", "import cv2; c = cv2.VideoCapture('out.mp4'); n = 0\n"
                             "while c.read()[0]: n += 1\nprint(n)", cwd=out))
    assert int(frames) == 12
    table = ok(user_env.run("fcn-edge", "bench", deploy_folder / "model.onnx", "--iterations", "3",
                            "--warmup", "1", "--json", "bench.json", cwd=out))
    assert "model.onnx: backend onnxruntime" in table, table
    assert json.loads((out / "bench.json").read_text())


def test_user_api_labels_equal_the_development_environments(user_env, deploy_folder, tmp_path):
    from fcn_edge.api import Segmenter

    frame = moving_frames(1, (120, 160))[0]
    np.save(tmp_path / "frame.npy", frame)
    code = ("import numpy as np\nfrom fcn_edge import Segmenter\n"
            "seg = Segmenter.open('model.onnx')\n"
            f"result = seg.segment(np.load({str(tmp_path / 'frame.npy')!r}))\n"
            f"np.save({str(tmp_path / 'labels.npy')!r}, result.labels)\n")
    ok(user_env.run("python", "-c", code, cwd=deploy_folder))
    here = Segmenter.open(str(deploy_folder / "model.onnx")).segment(frame).labels
    there = np.load(tmp_path / "labels.npy")
    assert there.shape == here.shape == frame.shape[:2]
    np.testing.assert_array_equal(there, here)
    assert len(np.unique(here)) > 1  # a constant map would agree trivially


def test_user_build_engine_plan_with_a_packaged_profile(user_env, deploy_folder, tmp_path):
    """README's Orin INT8 line, planned (--dry-run) where no TensorRT exists: the profile comes from the wheel."""
    done = ok(user_env.run("fcn-edge", "build-engine", deploy_folder / "model.onnx", "--profile", "orin-int8",
                           "--dry-run", "--trt-version", "10.3", cwd=tmp_path))
    assert "profile orin-int8" in done and "TensorRT 10.3" in done
    assert str(venvs.REPO_ROOT) not in done, done


def test_core_install_runs_what_needs_no_extra(core_env, deploy_folder, tmp_path):
    """Core only: --help, doctor, info on the ONNX and on an engine's sidecar; run on an ONNX names its extra."""
    assert not core_env.finds_module("onnxruntime") and not core_env.finds_module("torch")
    assert "run" in ok(core_env.run("fcn-edge", "--help", cwd=tmp_path))
    ok(core_env.run("fcn-edge", "doctor", cwd=tmp_path))
    assert "5 classes" in ok(core_env.run("fcn-edge", "info", deploy_folder / "model.onnx", cwd=tmp_path))
    engine = write_engine_with_sidecar(tmp_path / "model.fp16.engine")
    described = ok(core_env.run("fcn-edge", "info", engine, cwd=tmp_path))
    assert "TensorRT 8.6.2" in described and "Orin" in described, described
    run = core_env.run("fcn-edge", "run", deploy_folder / "model.onnx", "--source", deploy_folder / "clip.mp4",
                       "--sink", "none", cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "fcn-edge[onnx]" in errors[0], run.stderr
    print("core environment:", core_env.versions("fcn-edge", "numpy", "opencv-python-headless"))


def write_engine_with_sidecar(path):
    """An engine file (bytes TensorRT would reject, which info never reads) and the sidecar build-engine writes."""
    from tests.engine.test_sidecar import ENGINE, sidecar_dict

    from fcn_edge.artifacts.sidecar import write_engine_and_sidecar

    write_engine_and_sidecar(path, ENGINE, sidecar_dict(trt="8.6.2"))
    return path
