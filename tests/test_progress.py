"""Progress off a terminal: plain lines at a steady interval (a log never stays silent for minutes)."""

from __future__ import annotations

import re
import sys

import pytest

from fcn_edge.progress import format_duration, line_interval, progress, progress_line

from .conftest import TINY_CLASSES

LINE = re.compile(r"^(?P<desc>[^:]+): (?P<n>\d+)/(?P<total>\d+) (?P<unit>\w+) \(\d+%\), [\d.e+]+ \w+/s, elapsed")


@pytest.fixture
def plain_lines(monkeypatch):
    monkeypatch.delenv("FCN_EDGE_PROGRESS", raising=False)
    monkeypatch.setenv("FCN_EDGE_PROGRESS_INTERVAL", "0")


def test_off_a_terminal_every_step_is_a_whole_line_with_rate_and_eta(plain_lines, capsys):
    assert not sys.stderr.isatty()
    for _ in progress(range(4), desc="checking", unit="img"):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err and "\n\n" not in err
    lines = err.splitlines()
    assert [LINE.match(line).group("n") for line in lines] == ["0", "1", "2", "3", "4"]
    assert "ETA" in lines[2] and "ETA" not in lines[-1]


def test_hidden_stays_hidden(monkeypatch, capsys):
    monkeypatch.setenv("FCN_EDGE_PROGRESS", "0")
    for _ in progress(range(3), desc="x"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("FCN_EDGE_PROGRESS")
    for _ in progress(range(3), desc="x", disable=True):   # e.g. DDP ranks > 0, --no-progress
        pass
    assert capsys.readouterr().err == ""


def test_a_long_interval_prints_the_start_and_the_end_only(monkeypatch, capsys):
    monkeypatch.delenv("FCN_EDGE_PROGRESS", raising=False)
    monkeypatch.setenv("FCN_EDGE_PROGRESS_INTERVAL", "3600")
    with progress(total=1000, desc="train fcn8s", initial=200) as bar:
        for _ in range(800):
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert [LINE.match(line).group("n") for line in lines] == ["200", "1000"]


@pytest.mark.parametrize("text, expected", [("", 15.0), ("2.5", 2.5), ("-1", 15.0), ("nan", 15.0), ("x", 15.0)])
def test_interval_setting(monkeypatch, text, expected):
    monkeypatch.setenv("FCN_EDGE_PROGRESS_INTERVAL", text)
    assert line_interval() == expected


def test_line_wording():
    assert format_duration(42.4) == "42 s" and format_duration(358) == "5 min 58 s"
    assert format_duration(7380) == "2 h 03 min"
    assert progress_line("train fcn8s", 120, 800, 60.0, "it", initial=0) == (
        "train fcn8s: 120/800 it (15%), 2 it/s, elapsed 1 min 0 s, ETA 5 min 40 s")


@pytest.fixture(scope="module")
def progress_data(tmp_path_factory):
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("progress") / "data"
    write_synthetic_dataset(root, SynthConfig(train=8, val=6, size=(64, 64), num_classes=TINY_CLASSES, seed=7))
    return root


LOG_ENV = {"FCN_EDGE_PROGRESS": "", "FCN_EDGE_PROGRESS_INTERVAL": "0"}


def _lines(stderr: str, desc: str) -> list[re.Match]:
    return [m for m in map(LINE.match, stderr.splitlines()) if m and m.group("desc").startswith(desc)]


def test_train_eval_calibrate_and_bench_print_plain_lines_into_a_log(run_cli, progress_data, tiny_onnx, tmp_path):
    """stderr to a pipe, as in CI / docker / systemd: each long step shows done/total lines."""
    done = run_cli("train", "--data", progress_data, "--out", tmp_path / "run", "--width", "1/16", "--crop", "64x64",
                   "--batch-size", "2", "--iterations", "3", "--workers", "0", "--val-split", "none",
                   "--no-tensorboard", "--threads", "1", env=LOG_ENV, check=True)
    counts = [int(m.group("n")) for m in _lines(done.stderr, "train fcn8s")]
    assert counts == [0, 1, 2, 3], done.stderr

    done = run_cli("eval", tiny_onnx, "--data", progress_data, env=LOG_ENV, check=True)
    lines = _lines(done.stderr, "eval")
    assert lines and lines[-1].group("n") == lines[-1].group("total") == "6", done.stderr

    done = run_cli("calibrate", tiny_onnx, "--images", progress_data, "--num", "4", "--no-accuracy",
                   "--no-sensitivity", "-o", tmp_path / "m.int8.onnx", env=LOG_ENV, check=True)
    assert _lines(done.stderr, "calibrating")[-1].group("n") == "4", done.stderr

    done = run_cli("bench", tiny_onnx, "--iterations", "3", "--warmup", "0", env=LOG_ENV, check=True)
    assert _lines(done.stderr, "tiny.onnx batch 1")[-1].group("n") == "3", done.stderr
