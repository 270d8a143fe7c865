"""Semantic Boundaries Dataset (Hariharan et al.), the extra VOC training data of the paper.

::

    benchmark_RELEASE/dataset/
      img/<id>.jpg
      cls/<id>.mat          MATLAB struct GTcls with field Segmentation (HxW class indices)
      train.txt  val.txt    (any <split>.txt, e.g. train_noval.txt, is accepted)

The root may be the ``dataset`` folder or any folder above it (``benchmark_RELEASE``).
Labels are the 20 VOC classes plus background; SBD has no ignore pixels.  The .mat
files are read with ``scipy.io.loadmat`` (scipy is imported only when a mask is read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcn_edge.data.base import Entry, SegmentationDataset
from fcn_edge.data.imageio import check_labels
from fcn_edge.data.voc import split_entries, voc_class_options
from fcn_edge.errors import DataError
from fcn_edge.lazy import require


def is_sbd_root(path: Path) -> bool:
    return (path / "img").is_dir() and (path / "cls").is_dir()


def find_sbd_root(path: str | Path) -> Path | None:
    """The SBD ``dataset`` folder at ``path``, in ``path/dataset`` or ``path/benchmark_RELEASE/dataset``."""
    path = Path(path)
    for candidate in (path, path / "dataset", path / "benchmark_RELEASE" / "dataset"):
        if is_sbd_root(candidate):
            return candidate
    return None


def read_sbd_mask(path: str | Path) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD .mat file as uint8; DataError naming the file otherwise."""
    path = Path(path)
    sio = require("scipy.io", purpose="to read SBD .mat masks")
    if not path.is_file():
        raise DataError(f"mask {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"mask {path} is empty (0 bytes); replace or remove it")
    try:
        content = sio.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on corrupt files
        raise DataError(f"mask {path} is not a readable MATLAB file ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]})") from None
    gt = content.get("GTcls")
    segmentation = getattr(gt, "Segmentation", None)
    if segmentation is None and isinstance(gt, np.ndarray) and gt.dtype.names and "Segmentation" in gt.dtype.names:
        segmentation = gt["Segmentation"].item()
    if not isinstance(segmentation, np.ndarray) or segmentation.ndim != 2 or segmentation.size == 0:
        raise DataError(f"mask {path} has no GTcls.Segmentation label map; is it an SBD cls/*.mat file?")
    if not np.issubdtype(segmentation.dtype, np.integer):
        raise DataError(f"mask {path} holds {segmentation.dtype} labels; expected integers")
    if segmentation.min() < 0 or segmentation.max() > 255:
        raise DataError(f"mask {path} has label values outside 0-255 ({segmentation.min()}..{segmentation.max()})")
    return np.ascontiguousarray(segmentation.astype(np.uint8))


class SbdDataset(SegmentationDataset):
    """SBD: ``SbdDataset(root, split="train")``."""

    layout = "sbd"

    def __init__(self, root: str | Path, split: str = "train", **options) -> None:
        given = Path(root)
        found = find_sbd_root(given)
        if found is None:
            raise DataError(f"{given} is not an SBD folder: expected img/ and cls/ (in it, in dataset/ or in "
                            "benchmark_RELEASE/dataset/)")
        split_file = found / f"{split}.txt"
        if not split_file.is_file():
            available = ", ".join(sorted(p.stem for p in found.glob("*.txt"))) or "none"
            raise DataError(f"SBD split '{split}' not found: no {split_file}; available: {available}")
        entries, problems = split_entries(split_file, found / "img", found / "cls", ".mat")
        super().__init__(entries, root=found, split=split, problems=problems, **voc_class_options(options))

    def read_mask(self, entry: Entry) -> np.ndarray:
        assert entry.mask_path is not None
        mask = read_sbd_mask(entry.mask_path)
        if self.num_classes is not None:
            check_labels(mask, self.num_classes, ignore_index=self.ignore_index, name=str(entry.mask_path))
        return mask
