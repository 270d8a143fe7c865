"""Which dataset layout a path holds, and one call to open it: :func:`open_dataset`."""

from __future__ import annotations

from pathlib import Path

from fcn_edge.data.base import ImageListDataset, SegmentationDataset
from fcn_edge.data.folder import FolderDataset, ImageFolderDataset, is_folder_root
from fcn_edge.data.imageio import IMAGE_EXTENSIONS
from fcn_edge.data.sbd import SbdDataset, find_sbd_root
from fcn_edge.data.voc import VocDataset, find_voc_root
from fcn_edge.errors import DataError

LAYOUTS = ("voc", "sbd", "folder", "list", "images")

_EXPECTED = ("expected PASCAL VOC (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/), "
             "SBD (dataset/img/, dataset/cls/, dataset/<split>.txt), a folder with images/ and masks/ "
             "(or <split>/images/ and <split>/masks/), or a .txt list of images")


def detect_layout(path: str | Path) -> str:
    """``"voc"``, ``"sbd"``, ``"folder"`` or ``"list"``; DataError when none matches."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist")
    if path.is_file():
        if path.suffix.lower() == ".txt":
            return "list"
        raise DataError(f"{path} is a file; give a dataset folder or a .txt list of images ({_EXPECTED})")
    if find_voc_root(path) is not None:
        return "voc"
    if find_sbd_root(path) is not None:
        return "sbd"
    if is_folder_root(path):
        return "folder"
    raise DataError(f"{path} is not a dataset folder fcn-edge recognises: {_EXPECTED}")


def open_dataset(path: str | Path, split: str | None = None, *, layout: str | None = None,
                 on_error: str = "raise", num_classes: int | None = None, **options) -> SegmentationDataset:
    """Open the dataset at ``path`` (layout detected unless given) for ``split``.

    ``split`` defaults to ``"train"`` for VOC and SBD and to the whole folder for the
    folder layout (when it has no splits).  ``on_error`` is ``"raise"`` or ``"skip"``
    (see :mod:`fcn_edge.data.base`).  ``num_classes`` overrides the layout's own class
    count; other keyword options go to the layout's class (e.g. ``mask_folder`` for
    VOC, ``mask_suffix`` or ``require_masks`` for folders).
    """
    path = Path(path)
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise DataError(f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    common = dict(on_error=on_error, **options)
    if num_classes is not None:
        common["num_classes"] = num_classes
    if layout == "voc":
        return VocDataset(path, split or "train", **common)
    if layout == "sbd":
        return SbdDataset(path, split or "train", **common)
    if layout == "folder":
        return FolderDataset(path, split, **common)
    if layout == "list":
        return ImageListDataset(path, **common)
    return ImageFolderDataset(path, **common)


def open_images(path: str | Path, *, on_error: str = "raise", **options) -> SegmentationDataset:
    """Images without masks for calibration or inference: a .txt list, a folder, or one image file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".txt":
        return ImageListDataset(path, on_error=on_error, **options)
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        from fcn_edge.data.base import Entry

        return SegmentationDataset([Entry(path.stem, path, None)], root=path.parent, on_error=on_error,
                                   name=f"image {path}", **options)
    if path.is_dir():
        images = path / "images" if (path / "images").is_dir() else path
        return ImageFolderDataset(images, on_error=on_error, **options)
    if not path.exists():
        raise DataError(f"{path} does not exist; give an image folder, an image file or a .txt list of images")
    raise DataError(f"{path} is neither an image folder, an image file nor a .txt list of images")
