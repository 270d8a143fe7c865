"""fcn-edge demo end to end on a short run: every stage, the report, reuse, and --fresh's safety."""

from __future__ import annotations

import json

from ..conftest import assert_one_line_error


def test_demo_runs_every_stage_and_reuses_on_second_run(run_cli, tmp_path):
    work = tmp_path / "demo"
    first = run_cli("demo", "--workdir", work, "--iterations", "60", "--video-frames", "12", "--threads", "2",
                    timeout=900, check=True)
    summary = json.loads((work / "report" / "summary.json").read_text())
    names = [v["name"] for v in summary["variants"]]
    assert names[:4] == ["PyTorch FP32", "ONNX FP32", "ONNX INT8", "ONNX INT8 (CPU layout)"]
    for variant in summary["variants"]:
        assert 0.0 <= variant["metrics"]["mean_iu"] <= 1.0
        assert variant["latency_ms"]["p50"] > 0 and variant["fps"] > 0
        assert variant["stream"]["frames"]["processed"] == 12
    assert summary["variants"][1]["agreement"] > 0.99  # ONNX FP32 is the same model as PyTorch FP32
    assert summary["variants"][2]["agreement"] > 0.9
    if not any(v["backend"] == "tensorrt" for v in summary["variants"]):
        assert {s["name"] for s in summary["skipped"]} == {"TensorRT FP16", "TensorRT INT8"}
        assert all("TensorRT" in s["reason"] or "GPU" in s["reason"] for s in summary["skipped"])
        assert "skipped TensorRT FP16: " in first.stdout   # said when the stage skips it, not only in the summary
    assert "computing entropy ranges for fcn8s.int8.onnx (tensorrt Q/DQ placement)" in first.stderr
    assert "computing entropy ranges for fcn8s.int8-cpu.onnx (onnxruntime Q/DQ placement)" in first.stderr
    report = (work / "report" / "report.md").read_text()
    assert "| ONNX INT8 | onnxruntime | int8 |" in report
    assert (work / "report" / "report.html").stat().st_size > 10_000
    assert len(summary["overlays"]) == 3 and (work / "report" / summary["overlays"][0]).is_file()
    assert (work / "report" / "stream_onnx_int8.mp4").stat().st_size > 0
    assert "starting from nothing" in first.stdout

    checkpoint = (work / "train" / "best.pt").stat().st_mtime_ns
    second = run_cli("demo", "--workdir", work, "--iterations", "60", "--video-frames", "12", timeout=900, check=True)
    assert "reusing what is already built" in second.stdout
    steps = {s["name"]: s["reused"] for s in json.loads((work / "report" / "summary.json").read_text())["steps"]}
    assert steps["synthetic data"] and steps["train FCN-8s"] and steps["export ONNX"] and steps["calibrate INT8"]
    assert (work / "train" / "best.pt").stat().st_mtime_ns == checkpoint


def test_fresh_refuses_to_delete_a_folder_the_demo_did_not_make(run_cli, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    done = run_cli("demo", "--workdir", tmp_path, "--fresh")
    assert_one_line_error(done, "precious.txt")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_sigterm_to_the_demos_process_group_during_training_saves_a_checkpoint(tmp_path):
    """The issue's crash: SIGTERM to the group (timeout, systemd) during the demo's training ended in
    "internal error: DataLoader worker (pid N) is killed by signal"; now it stops as on Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import cli_env

    work = tmp_path / "demo"
    env = {**cli_env(), "FCN_EDGE_PROGRESS": "", "FCN_EDGE_PROGRESS_INTERVAL": "0"}

    def interrupt_training(at_least: int) -> tuple[int, str]:
        """Run the demo; SIGTERM its group once a training progress line shows ``at_least`` iterations."""
        process = subprocess.Popen([sys.executable, "-m", "fcn_edge", "demo", "--workdir", str(work),
                                    "--iterations", "5000", "--video-frames", "2", "--threads", "1"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        seen = []
        try:
            for line in process.stdout:
                seen.append(line)
                if line.startswith("train fcn8s: ") and int(line.split(": ", 1)[1].split("/", 1)[0]) >= at_least:
                    os.killpg(process.pid, signal.SIGTERM)
                    break
            seen.append(process.stdout.read())
            return process.wait(timeout=180), "".join(seen)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    code, text = interrupt_training(2)
    assert code == 130, text
    assert "killed by signal" not in text and "internal error" not in text and "Traceback" not in text
    assert "run the same fcn-edge demo command again to continue" in text
    from fcn_edge.checkpoint import load_checkpoint

    first_stop = load_checkpoint(work / "train" / "last.pt").resume["iteration"]
    assert first_stop >= 2

    code, text = interrupt_training(first_stop + 2)   # the same command again: training continues
    assert code == 130, text
    assert "continuing the interrupted training from" in text
    assert f"train fcn8s: {first_stop}/5000 it" in text and "train fcn8s: 0/5000" not in text
    assert load_checkpoint(work / "train" / "last.pt").resume["iteration"] >= first_stop + 2
