"""The generic folder layout: images and index masks matched by file name (stem).

Any of these, with ``<split>`` such as ``train`` or ``val``::

    root/<split>/images/*.jpg   root/<split>/masks/*.png      (what ``fcn-edge synth`` writes)
    root/images/<split>/*.jpg   root/masks/<split>/*.png
    root/images/*.jpg           root/masks/*.png   + root/<split>.txt (or splits/, lists/)
    root/images/**/*.jpg        root/masks/**/*.png   (no split: the whole tree)

Images and masks are paired by their path below ``images/`` and ``masks/`` without the
extension (``images/a/b.jpg`` <-> ``masks/a/b.png``); ``mask_suffix="_mask"`` accepts
``b_mask.png``.  Split lists hold one id (or image path) per line, or ``image mask``
path pairs relative to ``root``.

Class facts come from ``dataset.json`` (``num_classes``, ``class_names``, ``palette``,
``ignore_index``; written by the synth generator) or ``classes.txt`` (one name per line),
looked up in ``root`` and its parent, or from the ``num_classes`` argument.  Without any
of them label values are not range-checked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from fcn_edge.data.base import Entry, Problem, SegmentationDataset
from fcn_edge.data.imageio import IMAGE_EXTENSIONS, MASK_EXTENSIONS
from fcn_edge.data.listfile import read_list_file, resolve_listed
from fcn_edge.errors import DataError

DATASET_JSON = "dataset.json"
CLASSES_TXT = "classes.txt"
LIST_FOLDERS = (".", "splits", "lists", "ImageSets")


def _files_by_id(folder: Path, extensions: tuple[str, ...], suffix: str = "") -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = defaultdict(list)
    if not folder.is_dir():
        return index
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or path.suffix.lower() not in extensions or not path.is_file():
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if suffix:
            if not key.endswith(suffix):
                continue
            key = key[: -len(suffix)]
        index[key].append(path)
    return index


def _split_list(root: Path, split: str) -> Path | None:
    for folder in LIST_FOLDERS:
        candidate = root / folder / f"{split}.txt"
        if candidate.is_file():
            return candidate
    return None


def folder_splits(root: Path) -> list[str]:
    """The split names a folder-layout root offers."""
    splits = {p.name for p in root.iterdir() if p.is_dir() and (p / "images").is_dir()} if root.is_dir() else set()
    if (root / "images").is_dir():
        splits |= {p.name for p in (root / "images").iterdir() if p.is_dir() and (root / "masks" / p.name).is_dir()}
        for folder in LIST_FOLDERS:
            if (root / folder).is_dir():
                splits |= {p.stem for p in (root / folder).glob("*.txt") if p.name != CLASSES_TXT}
    return sorted(splits)


def is_folder_root(path: Path) -> bool:
    return (path / "images").is_dir() or bool(folder_splits(path))


def read_class_facts(root: Path) -> dict:
    """num_classes / class_names / palette / ignore_index from dataset.json or classes.txt."""
    for folder in (root, root.parent):
        described = folder / DATASET_JSON
        if described.is_file():
            try:
                data = json.loads(described.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{described} is not valid JSON ({exc}); fix or remove it") from None
            if not isinstance(data, dict):
                raise DataError(f"{described} must hold a JSON object")
            facts = {key: data[key] for key in ("num_classes", "class_names", "palette", "ignore_index")
                     if data.get(key) is not None}
            if "num_classes" in facts and not isinstance(facts["num_classes"], int):
                raise DataError(f"{described}: num_classes must be an integer")
            return facts
        names_file = folder / CLASSES_TXT
        if names_file.is_file():
            names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            if names:
                return {"num_classes": len(names), "class_names": names}
    return {}


class FolderDataset(SegmentationDataset):
    """Images + index masks matched by name: ``FolderDataset(root, split="val")``."""

    layout = "folder"

    def __init__(self, root: str | Path, split: str | None = None, *, mask_suffix: str = "",
                 require_masks: bool = True, **options) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"dataset folder {root} does not exist")
        images_dir, masks_dir, list_file = self._locate(root, split)
        if require_masks and not masks_dir.is_dir():
            raise DataError(f"{images_dir} has no matching masks folder {masks_dir}")
        images = _files_by_id(images_dir, IMAGE_EXTENSIONS)
        masks = _files_by_id(masks_dir, MASK_EXTENSIONS, mask_suffix) if masks_dir.is_dir() else {}
        if not images:
            raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {images_dir}")
        entries: list[Entry] = []
        problems: list[Problem] = []
        with_masks = masks_dir.is_dir() or require_masks

        def add(sample_id: str) -> None:
            found = images.get(sample_id, [])
            if len(found) != 1:
                problems.append(Problem(sample_id, images_dir / sample_id,
                                        "no image with this name" if not found else
                                        f"{len(found)} images share this name ({', '.join(p.name for p in found)})"))
                return
            mask_paths = masks.get(sample_id, [])
            if with_masks and len(mask_paths) != 1:
                problems.append(Problem(sample_id, found[0],
                                        f"no mask for this image in {masks_dir}" if not mask_paths else
                                        f"{len(mask_paths)} masks match this image "
                                        f"({', '.join(p.name for p in mask_paths)})"))
                return
            entries.append(Entry(sample_id, found[0], mask_paths[0] if with_masks else None))

        if list_file is None:
            for sample_id in images:
                add(sample_id)
        else:
            for row in read_list_file(list_file):
                if len(row) == 2:
                    image, mask = (resolve_listed(root, item) for item in row)
                    missing = next((p for p in (image, mask) if not p.is_file()), None)
                    if missing is not None:
                        problems.append(Problem(Path(row[0]).stem, missing, f"listed in {list_file} but missing"))
                    else:
                        entries.append(Entry(Path(row[0]).with_suffix("").as_posix(), image, mask))
                    continue
                item = row[0]
                if item not in images:
                    listed = resolve_listed(root, item)
                    for base in (images_dir, root):
                        try:
                            item = listed.relative_to(base).with_suffix("").as_posix()
                            break
                        except ValueError:
                            continue
                    if item not in images:
                        item = Path(row[0]).with_suffix("").as_posix()
                add(item)
        facts = read_class_facts(root)
        if options.get("num_classes") is not None and options["num_classes"] != facts.get("num_classes"):
            facts = {}  # the caller's class count wins; names/palette of another count do not apply
        for key, value in facts.items():
            options.setdefault(key, value)
        if options.get("num_classes") is None:
            options.pop("num_classes", None)
        super().__init__(entries, root=root, split=split, problems=problems, **options)
        self.images_dir = images_dir
        self.masks_dir = masks_dir if masks_dir.is_dir() else None
        self.list_file = list_file

    @staticmethod
    def _locate(root: Path, split: str | None) -> tuple[Path, Path, Path | None]:
        """(images folder, masks folder, split list or None) for ``split`` under ``root``."""
        if split is None:
            if (root / "images").is_dir():
                return root / "images", root / "masks", None  # the whole tree, sub-folders included
            splits = folder_splits(root)
            if splits:
                raise DataError(f"{root} holds the splits {', '.join(splits)}; choose one (split=... / --split)")
            raise DataError(f"{root} has no images/ folder; expected images/ + masks/ or <split>/images/")
        if (root / split / "images").is_dir():
            return root / split / "images", root / split / "masks", None
        if (root / "images" / split).is_dir():
            return root / "images" / split, root / "masks" / split, None
        list_file = _split_list(root, split)
        if (root / "images").is_dir() and list_file is not None:
            return root / "images", root / "masks", list_file
        splits = folder_splits(root)
        raise DataError(f"split '{split}' not found in {root}; available: {', '.join(splits) or 'none'} "
                        "(expected <split>/images/, images/<split>/ or <split>.txt beside images/)")


class ImageFolderDataset(SegmentationDataset):
    """Every image below a folder, without masks: calibration sets, inference inputs."""

    layout = "images"

    def __init__(self, folder: str | Path, **options) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"image folder {folder} does not exist")
        images = _files_by_id(folder, IMAGE_EXTENSIONS)
        if not images:
            raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
        entries, problems = [], []
        for sample_id, paths in images.items():
            if len(paths) == 1:
                entries.append(Entry(sample_id, paths[0], None))
            else:
                problems.append(Problem(sample_id, paths[0], f"{len(paths)} images share this name "
                                        f"({', '.join(p.name for p in paths)})"))
        options.setdefault("name", f"image folder {folder}")
        super().__init__(entries, root=folder, problems=problems, **options)
