"""The rehearsal: README's robot install on the system OpenCV (with GStreamer) and numpy, then real pipelines.

Runs in a ``--system-site-packages`` venv made from ``/usr/bin/python3`` (see conftest.py),
with Debian's python3-opencv (OpenCV 4.6, GStreamer 1.22) standing in for JetPack's OpenCV.
NVIDIA's own elements (nvarguscamerasrc, the NVMM memory caps, nvvidconv) exist only on a
Jetson: the CSI test substitutes standard GStreamer elements for exactly those and runs
the rest of the pipeline ``csi://0`` builds verbatim; the V4L2 test substitutes a test
source for ``v4l2src`` (no camera here).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

pytestmark = pytest.mark.slow

# Runs a pipeline through the venv's cv2 (CAP_GSTREAMER), as CaptureSource opens it: frames and their shape.
_RUN_PIPELINE = """
import json, sys, cv2
capture = cv2.VideoCapture(sys.argv[1], cv2.CAP_GSTREAMER)
opened, frames, shape = capture.isOpened(), 0, None
while opened and capture.grab():
    ok, image = capture.retrieve()
    frames += ok
    shape = list(image.shape)
print(json.dumps({"opened": opened, "frames": frames, "shape": shape}))
"""


def test_system_cv2_and_numpy_survive_the_robot_install(robot_venv, system_python):
    seen = robot_venv.python_json("import json, cv2, numpy; print(json.dumps({'cv2': cv2.__file__, "
                                  "'cv2_version': cv2.__version__, 'numpy': numpy.__file__, "
                                  "'numpy_version': numpy.__version__}))")
    assert seen["cv2"].startswith("/usr/lib/python3/dist-packages/"), seen
    assert seen["cv2"] == system_python["cv2"] and seen["cv2_version"] == system_python["cv2_version"]
    assert (seen["numpy"], seen["numpy_version"]) == (system_python["numpy"], system_python["numpy_version"])
    listed = robot_venv.run(robot_venv.python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check")
    names = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert not {n for n in names if n.startswith("opencv")}, names  # no pip OpenCV in the venv
    assert "numpy" not in {d["name"].lower() for d in json.loads(robot_venv.run(
        robot_venv.python, "-m", "pip", "list", "--local", "--format=json", "--disable-pip-version-check").stdout)}


def test_doctor_reports_the_system_opencv_with_gstreamer(robot_venv, system_python):
    done = robot_venv.run(robot_venv.fcn_edge, "doctor")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if re.match(r"\s+(ok|--) \S", line)}
    assert lines["opencv"].lstrip().startswith("ok") and "(system" in lines["opencv"]
    assert system_python["cv2"] in lines["opencv"] and ": fit;" in lines["opencv"]
    gst_version = system_python["gstreamer"].split()[-1]
    assert f"GStreamer: yes {gst_version}" in lines["opencv"]
    assert lines["opencv-gstreamer"].lstrip().startswith("ok")
    assert f"{system_python['numpy_version']} (system)" in lines["numpy"]
    print("\n".join(lines[name] for name in ("numpy", "opencv", "opencv-gstreamer")))  # README quotes these


def test_finite_gst_pipeline_processes_every_frame_then_ends(robot_venv, tiny_onnx, tmp_path):
    stats = tmp_path / "stats.json"
    done = robot_venv.run(robot_venv.fcn_edge, "run", tiny_onnx, "--source",
                          "gst:videotestsrc num-buffers=60 ! video/x-raw,width=160,height=120 ! videoconvert ! appsink",
                          "--sink", "none", "--stats-json", stats)
    assert done.returncode == 0, done.stderr
    data = json.loads(stats.read_text())
    assert data["frames"]["processed"] == 60 and data["frames"]["captured"] == 60
    assert data["stop_reason"] == "end-of-source" and data["reconnects"] == 0


def test_live_gst_pipeline_is_reopened_when_it_ends(robot_venv, tiny_onnx, tmp_path):
    stats = tmp_path / "stats.json"
    done = robot_venv.run(robot_venv.fcn_edge, "run", tiny_onnx, "--source",
                          "gst:videotestsrc is-live=true num-buffers=10 ! video/x-raw,width=160,height=120,framerate=60/1",
                          "--sink", "none", "--max-frames", 25, "--reconnect-delay", 0.1, "--stats-json", stats)
    assert done.returncode == 0, done.stderr
    data = json.loads(stats.read_text())
    assert data["reconnects"] >= 2 and data["stop_reason"] == "max-frames", data["events"]


def _run_pipeline(robot_venv, pipeline: str) -> dict:
    done = robot_venv.run(robot_venv.python, "-c", _RUN_PIPELINE, pipeline, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_csi_pipeline_runs_in_real_gstreamer_with_a_test_source_for_nvidias_elements(robot_venv):
    built = robot_venv.python_json("import json; from fcn_edge.stream.sources import csi_pipeline; "
                                   "print(json.dumps(csi_pipeline(0, 320, 240, 30, flip_method=2)))")
    assert built.startswith("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM)")
    # The substitution: only NVIDIA's elements are replaced (Jetson-only); caps, formats,
    # videoconvert and the appsink's properties run as csi://0 builds them.
    substituted = (built.replace("nvarguscamerasrc sensor-id=0", "videotestsrc is-live=true num-buffers=20")
                   .replace("video/x-raw(memory:NVMM)", "video/x-raw")
                   .replace("nvvidconv flip-method=2", "videoflip method=rotate-180"))
    assert "nv" not in substituted.replace("videoconvert", "")
    result = _run_pipeline(robot_venv, substituted)
    assert result["opened"] and result["frames"] >= 1 and result["shape"] == [240, 320, 3], result


def test_v4l2_pipeline_runs_in_real_gstreamer_with_a_test_source_for_v4l2src(robot_venv):
    built = robot_venv.python_json("import json; from fcn_edge.stream.sources import v4l2_pipeline; "
                                   "print(json.dumps(v4l2_pipeline('/dev/video0', 320, 240, 30)))")
    assert built.startswith("v4l2src device=/dev/video0 io-mode=2 ! ")
    # no camera here: videotestsrc (live, 20 frames) stands in for v4l2src; the rest runs verbatim
    substituted = built.replace("v4l2src device=/dev/video0 io-mode=2", "videotestsrc is-live=true num-buffers=20")
    result = _run_pipeline(robot_venv, substituted)
    assert result["opened"] and result["frames"] >= 1 and result["shape"] == [240, 320, 3], result


def test_hardware_style_file_playback_ends_after_its_frames(robot_venv, tiny_onnx, tmp_path):
    # A Jetson plays files with filesrc ! qtdemux ! h264parse ! nvv4l2decoder ! nvvidconv ! appsink;
    # here avdec_h264 + videoconvert stand in for NVIDIA's decoder and converter.
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 missing (apt-get install gstreamer1.0-tools)")
    clip = tmp_path / "clip.mp4"
    made = robot_venv.run("gst-launch-1.0", "-q", "videotestsrc", "num-buffers=30", "!",
                          "video/x-raw,width=160,height=120,framerate=30/1", "!", "x264enc", "!", "h264parse", "!",
                          "mp4mux", "!", "filesink", f"location={clip}")
    assert made.returncode == 0 and clip.stat().st_size > 0, made.stderr
    stats = tmp_path / "stats.json"
    done = robot_venv.run(robot_venv.fcn_edge, "run", tiny_onnx, "--source",
                          f"gst:filesrc location={clip} ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! appsink",
                          "--sink", "none", "--stats-json", stats)
    assert done.returncode == 0, done.stderr
    data = json.loads(stats.read_text())
    assert data["frames"]["processed"] == 30 and data["stop_reason"] == "end-of-source"
