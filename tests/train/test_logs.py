"""Training logs: log.csv always, TensorBoard scalars when tensorboard is installed."""

from __future__ import annotations

import csv
import logging

import pytest

from fcn_edge.lazy import available
from fcn_edge.train.logs import COLUMNS, TrainLog


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_every_row_and_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = TrainLog(tmp_path, tensorboard=False)
    for iteration in (10, 20, 30):
        log.row(iteration=iteration, phase="train", loss=1.0 / iteration, lr=0.01)
    log.row(iteration=20, phase="val", mean_iu=0.5)
    log.close()
    assert [r["iteration"] for r in _rows(tmp_path / "log.csv")] == ["10", "20", "30", "20"]
    assert list(_rows(tmp_path / "log.csv")[0]) == list(COLUMNS)

    # resumed from the checkpoint of iteration 20: the row of 30 was never part of that run
    resumed = TrainLog(tmp_path, resume_from=20, tensorboard=False)
    resumed.row(iteration=30, phase="train", loss=0.5, lr=0.01)
    resumed.close()
    rows = _rows(tmp_path / "log.csv")
    assert [(r["iteration"], r["phase"]) for r in rows] == [("10", "train"), ("20", "train"), ("20", "val"),
                                                              ("30", "train")]
    assert float(rows[-1]["loss"]) == 0.5


@pytest.mark.skipif(not available("torch.utils.tensorboard"), reason="tensorboard is not installed")
def test_tensorboard_gets_the_same_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = TrainLog(tmp_path, tensorboard=True)
    assert log.tensorboard is not None
    for iteration in (1, 2, 3):
        log.row(iteration=iteration, phase="train", loss=1.0 / iteration, lr=0.01)
    log.row(iteration=3, phase="val", mean_iu=0.75, pixel_accuracy=0.9)
    log.close()

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/mean_iu", "val/pixel_accuracy"} <= tags
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("train/loss")] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert events.Scalars("val/mean_iu")[0].value == pytest.approx(0.75)


def test_tensorboard_asked_for_but_missing_is_a_warning_not_a_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("fcn_edge.train.logs.available", lambda module: False)
    with caplog.at_level(logging.WARNING):
        log = TrainLog(tmp_path, tensorboard=True)
    log.row(iteration=1, phase="train", loss=1.0)
    log.close()
    assert log.tensorboard is None
    assert "pip install tensorboard" in caplog.text
    assert len(_rows(tmp_path / "log.csv")) == 1
