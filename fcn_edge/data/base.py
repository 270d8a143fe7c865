"""The one dataset interface every layout (VOC, SBD, folder, list) shares.

A dataset is a list of :class:`Entry` (id, image path, mask path) plus the class facts
(number, names, palette).  Indexing decodes one :class:`Sample`: ``image`` uint8 HxWx3
BGR, ``mask`` uint8 HxW (255 = ignore) or None for image-only sets.

Bad files follow ``on_error``:

* ``"raise"``: the first bad file raises :class:`DataError` naming it;
* ``"skip"``: the file is recorded in :attr:`SegmentationDataset.report` and left out:
  ``dataset[i]`` returns ``None`` for it (a DataLoader's collate drops the ``None``,
  see :mod:`fcn_edge.data.torch_adapter`) and iterating yields only good samples, so
  nothing is counted twice in an evaluation.  :meth:`SegmentationDataset.load` always
  raises, whatever the policy.

Problems found while listing (an image without its mask, a listed id without its file)
follow the same policy at construction time.  Decoding happens on access only, so
opening a 10 000-image dataset is quick; :meth:`SegmentationDataset.validate` decodes
everything once when an up-front check is wanted.

Nothing here imports torch: the dataset is a plain ``__len__``/``__getitem__`` sequence
that a PyTorch DataLoader can use as it is.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fcn_edge.data.imageio import IGNORE_INDEX, load_image, read_mask
from fcn_edge.data.report import DataReport, check_on_error
from fcn_edge.errors import DataError

log = logging.getLogger("fcn_edge.data")


@dataclass(frozen=True)
class Entry:
    """One listed sample: files, not pixels (nothing is decoded until it is used)."""

    id: str
    image_path: Path
    mask_path: Path | None = None


@dataclass
class Sample:
    """One decoded sample.  ``image``: uint8 HxWx3 BGR; ``mask``: uint8 HxW or None."""

    image: np.ndarray
    mask: np.ndarray | None
    id: str
    image_path: Path
    mask_path: Path | None = None
    index: int = -1

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True)
class Problem:
    """A bad entry found while listing a dataset (before any decoding)."""

    id: str
    path: Path
    reason: str


class SegmentationDataset:
    """A sequence of samples with class facts and a bad-data policy (see the module doc)."""

    layout = "generic"

    def __init__(self, entries: Sequence[Entry], *, root: str | Path, split: str | None = None,
                 num_classes: int | None = None, class_names: Sequence[str] | None = None,
                 palette: Sequence[Sequence[int]] | None = None, ignore_index: int = IGNORE_INDEX,
                 on_error: str = "raise", problems: Sequence[Problem] = (), name: str | None = None,
                 report: DataReport | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.on_error = check_on_error(on_error)
        self.ignore_index = int(ignore_index)
        self.name = name or f"{self.layout} dataset {self.root}" + (f" [{split}]" if split else "")
        self.report = report or DataReport(self.name)
        if num_classes is None and class_names:
            num_classes = len(class_names)
        self.num_classes = int(num_classes) if num_classes is not None else None
        if self.num_classes is not None and not 1 <= self.num_classes <= 255:
            raise DataError(f"{self.name}: the number of classes must be 1-255 (255 is the ignore label), "
                            f"got {self.num_classes}")
        if class_names is not None and self.num_classes is not None and len(class_names) != self.num_classes:
            raise DataError(f"{self.name}: {len(class_names)} class names for {self.num_classes} classes")
        self.class_names = list(class_names) if class_names else (
            [f"class_{i}" for i in range(self.num_classes)] if self.num_classes else [])
        self.palette = [tuple(int(c) for c in colour) for colour in palette] if palette else None
        for problem in problems:
            if self.on_error == "raise":
                raise DataError(f"{problem.path}: {problem.reason} (pass on_error='skip' / --skip-bad-data "
                                "to leave such samples out)")
            self.report.add(problem.id, problem.path, problem.reason)
        self.entries: list[Entry] = list(entries)
        if not self.entries:
            raise DataError(f"{self.name} has no usable samples" +
                            (f" ({self.report.count} skipped as bad)" if self.report.count else ""))

    # ---------------------------------------------------------------- sequence protocol
    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample | None:
        """The sample, or None when it is bad and ``on_error == "skip"``."""
        return self.get(index)

    def __iter__(self) -> Iterator[Sample]:
        """Good samples only (bad ones raise or are skipped and counted, per ``on_error``)."""
        for index in range(len(self)):
            sample = self.get(index)
            if sample is not None:
                yield sample
        if self.report.count:
            self.report.log_summary(log)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
                f"num_classes={self.num_classes}, on_error={self.on_error!r})")

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    @property
    def has_masks(self) -> bool:
        return all(entry.mask_path is not None for entry in self.entries)

    # ---------------------------------------------------------------- decoding
    def get(self, index: int) -> Sample | None:
        """:meth:`load` under the ``on_error`` policy."""
        if self.on_error == "raise":
            return self.load(index)
        try:
            return self.load(index)
        except DataError as exc:
            entry = self.entries[index]
            self.report.add(entry.id, getattr(exc, "path", entry.image_path), exc)
            return None

    def load(self, index: int) -> Sample:
        """Decode sample ``index``; DataError naming the file when anything is wrong."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        index = index % len(self)
        entry = self.entries[index]
        try:
            loaded = load_image(entry.image_path)
        except DataError as exc:
            exc.path = entry.image_path  # type: ignore[attr-defined]
            raise
        for note in loaded.notes:
            self.report.note(note, entry.image_path)
        mask = None
        if entry.mask_path is not None:
            try:
                mask = self.read_mask(entry)
                if mask.shape != loaded.pixels.shape[:2]:
                    raise DataError(f"mask {entry.mask_path} is {mask.shape[0]}x{mask.shape[1]} but its image "
                                    f"{entry.image_path} is {loaded.size[0]}x{loaded.size[1]} (HxW); "
                                    "they must match")
            except DataError as exc:
                exc.path = entry.mask_path  # type: ignore[attr-defined]
                raise
        return Sample(loaded.pixels, mask, entry.id, entry.image_path, entry.mask_path, index)

    def read_mask(self, entry: Entry) -> np.ndarray:
        """The mask of ``entry`` as uint8 class indices, checked against the classes."""
        assert entry.mask_path is not None
        return read_mask(entry.mask_path, num_classes=self.num_classes, ignore_index=self.ignore_index)

    # ---------------------------------------------------------------- whole-set helpers
    def validate(self, show_progress: bool = True) -> DataReport:
        """Decode every sample once.  Under ``"skip"`` bad entries are dropped for good."""
        from fcn_edge.progress import progress

        good = []
        indices = range(len(self))
        for index in (progress(indices, desc=f"checking {self.layout} data", unit="img") if show_progress
                      else indices):
            if self.get(index) is not None:
                good.append(self.entries[index])
        if not good:
            raise DataError(f"{self.name}: all {len(self)} samples are bad; see the messages above")
        self.entries = good
        self.report.log_summary(log)
        return self.report

    def subset(self, indices: Sequence[int]) -> "SegmentationDataset":
        """A view of some samples (same classes, policy and report)."""
        view = copy.copy(self)
        view.entries = [self.entries[i] for i in indices]
        return view

    def describe(self) -> dict:
        """Plain facts for logs and artifacts (training metadata, eval reports)."""
        return {
            "layout": self.layout,
            "root": str(self.root),
            "split": self.split,
            "samples": len(self),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette] if self.palette else None,
            "ignore_index": self.ignore_index,
            "skipped": self.report.count,
        }


class ImageListDataset(SegmentationDataset):
    """Images (and optionally masks) named by a list file: calibration sets, custom lists.

    One column: image paths (no masks).  Two columns: ``image mask`` pairs.  Relative
    paths are relative to the list file's folder.
    """

    layout = "list"

    def __init__(self, list_file: str | Path, **options) -> None:
        from fcn_edge.data.listfile import read_list_file, resolve_listed

        list_file = Path(list_file)
        rows = read_list_file(list_file)
        if not rows:
            raise DataError(f"list file {list_file} lists no images")
        widths = {len(row) for row in rows}
        if len(widths) > 1:
            raise DataError(f"list file {list_file} mixes one- and two-column lines; use one form")
        entries, problems = [], []
        for row in rows:
            image = resolve_listed(list_file.parent, row[0])
            mask = resolve_listed(list_file.parent, row[1]) if len(row) == 2 else None
            entry = Entry(image.stem if mask is None else Path(row[0]).stem, image, mask)
            missing = [p for p in (image, mask) if p is not None and not p.is_file()]
            if missing:
                problems.append(Problem(entry.id, missing[0], f"listed in {list_file} but missing"))
            else:
                entries.append(entry)
        options.setdefault("name", f"image list {list_file}")
        super().__init__(entries, root=list_file.parent, problems=problems, **options)
        self.list_file = list_file
