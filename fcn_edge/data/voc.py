"""PASCAL VOC segmentation layout (2012, and 2011 which has the same layout).

::

    VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        palette PNGs: index = class, 255 = void (ignore)
      ImageSets/Segmentation/{train,val,trainval}.txt

The root may be given as ``VOC2012/``, ``VOCdevkit/`` or the folder holding
``VOCdevkit/``.  Masks are read as palette *indices* (never as colours), 21 classes.
``mask_folder="SegmentationClassAug"`` selects the widely used augmented masks when
they sit beside the originals.
"""

from __future__ import annotations

from pathlib import Path

from fcn_edge.data.base import Entry, Problem, SegmentationDataset
from fcn_edge.data.listfile import read_ids
from fcn_edge.errors import DataError
from fcn_edge.artifacts.modelinfo import VOC_CLASSES, voc_palette

SPLIT_FOLDER = Path("ImageSets") / "Segmentation"


def is_voc_root(path: Path) -> bool:
    return (path / "JPEGImages").is_dir() and (path / SPLIT_FOLDER).is_dir()


def find_voc_root(path: str | Path) -> Path | None:
    """The VOC year folder at or just below ``path`` (VOC2012 preferred), or None."""
    path = Path(path)
    if is_voc_root(path):
        return path
    candidates: list[Path] = []
    for base in (path, path / "VOCdevkit"):
        if base.is_dir():
            candidates += sorted(p for p in base.iterdir() if p.is_dir() and is_voc_root(p))
    if not candidates:
        return None
    return next((p for p in candidates if p.name == "VOC2012"), candidates[-1])


def voc_splits(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / SPLIT_FOLDER).glob("*.txt"))


def split_entries(split_file: Path, images: Path, masks: Path, mask_suffix: str) -> tuple[list[Entry], list[Problem]]:
    """The samples ``split_file`` lists (``images/<id>.jpg``, ``masks/<id><mask_suffix>``), and as problems
    the listed ones missing a file (reported, not fatal).  Shared by VOC and SBD."""
    entries, problems = [], []
    for sample_id in read_ids(split_file):
        image = images / f"{sample_id}.jpg"
        mask = masks / f"{sample_id}{mask_suffix}"
        missing = next((p for p in (image, mask) if not p.is_file()), None)
        if missing is not None:
            problems.append(Problem(sample_id, missing, f"listed in {split_file.name} but missing"))
        else:
            entries.append(Entry(sample_id, image, mask))
    return entries, problems


def voc_class_options(options: dict) -> dict:
    """``options`` with the VOC classes' count, names and palette filled in where the caller gave none."""
    options.setdefault("num_classes", len(VOC_CLASSES))
    if options["num_classes"] == len(VOC_CLASSES):
        options.setdefault("class_names", list(VOC_CLASSES))
    options.setdefault("palette", voc_palette(options["num_classes"]))
    return options


class VocDataset(SegmentationDataset):
    """PASCAL VOC segmentation: ``VocDataset(root, split="val")``."""

    layout = "voc"

    def __init__(self, root: str | Path, split: str = "train", *, mask_folder: str = "SegmentationClass",
                 **options) -> None:
        given = Path(root)
        found = find_voc_root(given)
        if found is None:
            raise DataError(f"{given} is not a PASCAL VOC folder: expected JPEGImages/ and "
                            "ImageSets/Segmentation/ (in it, in VOC2012/ or in VOCdevkit/VOC2012/)")
        masks = found / mask_folder
        if not masks.is_dir():
            raise DataError(f"VOC folder {found} has no {mask_folder}/ folder of segmentation masks")
        split_file = found / SPLIT_FOLDER / f"{split}.txt"
        if not split_file.is_file():
            raise DataError(f"VOC split '{split}' not found: no {split_file}; available: "
                            f"{', '.join(voc_splits(found)) or 'none'}")
        entries, problems = split_entries(split_file, found / "JPEGImages", masks, ".png")
        super().__init__(entries, root=found, split=split, problems=problems, **voc_class_options(options))
