"""Training logs: ``log.csv`` (always) and TensorBoard (when ``torch.utils.tensorboard`` imports).

``log.csv`` has one row per logging interval (``phase=train``: mean loss over the
interval, learning rate, images per second) and one per validation (``phase=val``:
the four metrics).  Rows are appended and flushed as they come, so a crash leaves
every row written so far.  On resume the rows after the resumed iteration (written
by the interrupted run after its last checkpoint) are dropped first, so the file
reads as one run.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from fcn_edge.fileio import atomic_write_text
from fcn_edge.lazy import available

log = logging.getLogger("fcn_edge.train")

COLUMNS = ("iteration", "epoch", "phase", "lr", "loss", "images_per_s", "pixel_accuracy", "mean_accuracy",
           "mean_iu", "fw_iu", "elapsed_s")


class TrainLog:
    """Appends rows to ``log.csv`` and mirrors scalars to TensorBoard when asked and available."""

    def __init__(self, folder: Path, *, resume_from: int | None = None, tensorboard: bool | None = None) -> None:
        self.path = folder / "log.csv"
        if resume_from is not None and self.path.is_file():
            self._truncate_after(resume_from)
        else:
            atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        self._handle = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=COLUMNS, extrasaction="ignore")
        self.tensorboard = None
        if tensorboard is not False:
            if available("torch.utils.tensorboard"):
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(folder / "tensorboard"),
                                                 purge_step=resume_from if resume_from else None)
            elif tensorboard:
                log.warning("TensorBoard logging was asked for but torch.utils.tensorboard cannot be imported "
                            "(pip install tensorboard); logging to %s only", self.path)

    def _truncate_after(self, iteration: int) -> None:
        text = self.path.read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            try:
                if int(row.get("iteration") or 0) <= iteration:
                    writer.writerow(row)
            except ValueError:
                continue
        atomic_write_text(self.path, out.getvalue())

    def row(self, **values: Any) -> None:
        clean = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()}
        self._writer.writerow(clean)
        self._handle.flush()
        if self.tensorboard is not None:
            step = int(values["iteration"])
            phase = values.get("phase", "train")
            for key in ("loss", "lr", "images_per_s", "pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu"):
                value = values.get(key)
                if isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{phase}/{key}", value, step)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def read_log(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``log.csv`` (for plots, tests and the demo)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
