"""fcn-edge doctor reports every stage's needs without crashing on a partial install."""

from __future__ import annotations

import json

from fcn_edge import doctor


def test_doctor_json_lists_probes_and_commands(run_cli):
    completed = run_cli("doctor", "--json", "-", check=True)
    data = json.loads(completed.stdout)
    names = {p["name"] for p in data["probes"]}
    assert {"python", "torch", "onnxruntime", "tensorrt", "opencv", "gpu", "cameras"} <= names
    assert "build-engine" in data["commands"]
    # on this machine ONNX export/run are possible; the result must agree with the probes
    probes = {p["name"]: p["ok"] for p in data["probes"]}
    assert (data["commands"]["run (.onnx)"] == []) == (probes["onnxruntime"] and probes["opencv"])
    assert ("tensorrt" in data["commands"]["build-engine"]) == (not probes["tensorrt"])


def test_missing_packages_get_a_hint(monkeypatch):
    monkeypatch.setattr(doctor, "_version_of", lambda name: (False, "not installed"))
    probe = doctor.probe_tensorrt()
    assert not probe.ok and "JetPack" in probe.hint
    report = doctor.collect()
    assert "torch" in report.commands["train"]
    assert "fcn-edge doctor" in doctor.format_report(report)


def test_cv2_built_for_numpy1_under_numpy2_is_one_sentence(monkeypatch):
    # What a pip numpy 2 in a --system-site-packages venv does to Debian's or JetPack's cv2.
    found = {"numpy": ["2.4.6", "/v/lib/python3.11/site-packages/numpy/__init__.py"],
             "cv2_error": "ImportError: numpy.core.multiarray failed to import"}
    monkeypatch.setattr(doctor, "_probe_cv2_in_child", lambda: found)
    numpy_probe, opencv_probe, gst_probe = doctor.probe_opencv()
    assert numpy_probe.ok and "2.4.6 (pip)" in numpy_probe.detail
    assert not opencv_probe.ok and "fails to import" in opencv_probe.detail
    assert "numpy<2" in opencv_probe.hint and "numpy 1.x" in opencv_probe.hint
    assert not gst_probe.ok


def test_missing_cv2_names_the_system_package_and_the_extra(monkeypatch):
    found = {"numpy": ["1.24.2", "/usr/lib/python3/dist-packages/numpy/__init__.py"],
             "cv2_error": "ModuleNotFoundError: No module named 'cv2'"}
    monkeypatch.setattr(doctor, "_probe_cv2_in_child", lambda: found)
    numpy_probe, opencv_probe, _ = doctor.probe_opencv()
    assert "1.24.2 (system)" in numpy_probe.detail
    assert opencv_probe.detail == "not installed"
    assert "python3-opencv" in opencv_probe.hint and "fcn-edge[opencv]" in opencv_probe.hint


def test_opencv_line_says_which_cv2_and_whether_numpy_fits(run_cli):
    data = json.loads(run_cli("doctor", "--json", "-", check=True).stdout)
    probes = {p["name"]: p for p in data["probes"]}
    import cv2
    import numpy

    assert probes["opencv"]["ok"] and cv2.__version__ in probes["opencv"]["detail"]
    assert f"imports with numpy {numpy.__version__}: fit" in probes["opencv"]["detail"]
    assert probes["numpy"]["detail"].startswith(numpy.__version__)
