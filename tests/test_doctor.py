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
