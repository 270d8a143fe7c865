"""Dataset layouts (VOC, SBD, folder, lists), layout detection, and the bad-data policy."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from fcn_edge.data import (
    FolderDataset,
    SbdDataset,
    VocDataset,
    detect_layout,
    open_dataset,
    open_images,
    write_mask,
)
from fcn_edge.data.imageio import NOTE_GRAYSCALE
from fcn_edge.errors import DataError
from fcn_edge.artifacts.modelinfo import VOC_CLASSES
from tests.data.conftest import random_mask, write_jpeg, write_png


def _check_samples(dataset):
    for sample in dataset:
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3 and sample.image.shape[2] == 3
        assert sample.mask.dtype == np.uint8 and sample.mask.shape == sample.image.shape[:2]
        values = set(np.unique(sample.mask).tolist())
        assert values <= set(range(dataset.num_classes)) | {255}


# ---------------------------------------------------------------- VOC

def test_voc_layout(voc_root):
    for given in (voc_root, voc_root.parent, voc_root.parent.parent):
        assert detect_layout(given) == "voc"
    train = open_dataset(voc_root.parent.parent, "train")
    assert isinstance(train, VocDataset) and len(train) == 3 and train.num_classes == 21
    assert train.class_names == list(VOC_CLASSES) and train.palette[1] == (128, 0, 0)
    assert train.ids == ["2007_000000", "2007_000001", "2007_000002"]
    _check_samples(train)
    sample = train[1]
    assert sample.id == "2007_000001" and sample.size == (44, 56) and (sample.mask[0] == 255).all()
    assert len(open_dataset(voc_root, "val")) == 2 and len(open_dataset(voc_root, "trainval")) == 5


def test_voc_missing_split_lists_the_available_ones(voc_root):
    with pytest.raises(DataError, match="available: train, trainval, val"):
        VocDataset(voc_root, "test")


def test_voc_listed_but_missing_files(voc_root):
    (voc_root / "JPEGImages" / "2007_000001.jpg").unlink()
    with pytest.raises(DataError, match="2007_000001.jpg"):
        VocDataset(voc_root, "train")
    dataset = VocDataset(voc_root, "train", on_error="skip")
    assert len(dataset) == 2 and dataset.report.count == 1
    assert dataset.report.files[0].endswith("2007_000001.jpg")


# ---------------------------------------------------------------- SBD

@pytest.fixture
def sbd_root(tmp_path):
    sio = pytest.importorskip("scipy.io")
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    rng = np.random.default_rng(3)
    (root / "cls").mkdir(parents=True)
    for i in range(3):
        write_jpeg(root / "img" / f"2008_{i:06d}.jpg", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        mask = random_mask(rng, (30, 40), 21, ignore_border=False)
        sio.savemat(root / "cls" / f"2008_{i:06d}.mat",
                    {"GTcls": {"Segmentation": mask, "Boundaries": np.zeros(1), "CategoriesPresent": np.arange(3)}})
    (root / "train.txt").write_text("2008_000000\n2008_000001\n")
    (root / "val.txt").write_text("2008_000002\n")
    return root


def test_sbd_layout(sbd_root):
    import scipy.io as sio

    assert detect_layout(sbd_root.parent.parent) == "sbd"
    train = open_dataset(sbd_root.parent.parent, "train")
    assert isinstance(train, SbdDataset) and len(train) == 2
    _check_samples(train)
    expected = sio.loadmat(sbd_root / "cls" / "2008_000001.mat")["GTcls"]["Segmentation"][0, 0]
    np.testing.assert_array_equal(train[1].mask, expected)


def test_sbd_corrupt_mat(sbd_root):
    (sbd_root / "cls" / "2008_000002.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" * 3)
    val = SbdDataset(sbd_root, "val")
    with pytest.raises(DataError, match="2008_000002.mat"):
        val.load(0)


# ---------------------------------------------------------------- folder layouts

def test_folder_flat_with_list_files(folder_root):
    assert detect_layout(folder_root) == "folder"
    whole = open_dataset(folder_root)
    assert isinstance(whole, FolderDataset) and len(whole) == 6
    assert whole.num_classes == 4 and whole.class_names == ["background", "a", "b", "c"]
    _check_samples(whole)
    train = open_dataset(folder_root, "train")
    assert train.ids == ["img0", "img1", "img2", "img3"]
    val = open_dataset(folder_root, "val")  # from splits/val.txt, by path and by id
    assert val.ids == ["img4", "img5"]
    with pytest.raises(DataError, match="available: train, val"):
        open_dataset(folder_root, "test")


def test_folder_split_subfolders_both_ways(tmp_path):
    rng = np.random.default_rng(2)
    for layout in ("a", "b"):
        for split, count in (("train", 3), ("val", 2)):
            for i in range(count):
                base = tmp_path / layout
                images = base / split / "images" if layout == "a" else base / "images" / split
                masks = base / split / "masks" if layout == "a" else base / "masks" / split
                write_png(images / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
                masks.mkdir(parents=True, exist_ok=True)
                write_mask(masks / f"{i}.png", random_mask(rng, (16, 16), 3))
        assert detect_layout(tmp_path / layout) == "folder"
        assert len(open_dataset(tmp_path / layout, "train", num_classes=3)) == 3
        assert len(open_dataset(tmp_path / layout, "val", num_classes=3)) == 2
        if layout == "a":
            with pytest.raises(DataError, match="splits train, val"):
                open_dataset(tmp_path / layout)
        else:  # images/<split>/...: no split given means the whole tree
            assert sorted(open_dataset(tmp_path / layout).ids)[:2] == ["train/0", "train/1"]
    # a split folder is itself a flat dataset
    assert len(open_dataset(tmp_path / "a" / "val")) == 2


def test_folder_mask_suffix_and_nested_ids(tmp_path):
    rng = np.random.default_rng(4)
    write_png(tmp_path / "images" / "city" / "x.jpg", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_png(tmp_path / "masks" / "city" / "x_mask.png", np.ones((8, 8), np.uint8))
    dataset = FolderDataset(tmp_path, mask_suffix="_mask", num_classes=2)
    assert dataset.ids == ["city/x"] and dataset[0].mask.sum() == 64


def test_no_layout_matches(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        open_dataset(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "missing")


def test_image_only_sets(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(3):
        write_png(tmp_path / "calib" / f"{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "calib.txt").write_text("calib/0.png\ncalib/2.png\n")
    listed = open_images(tmp_path / "calib.txt")
    assert listed.ids == ["0", "2"] and listed[0].mask is None and not listed.has_masks
    assert len(open_images(tmp_path / "calib")) == 3
    assert len(open_images(tmp_path / "calib" / "1.png")) == 1
    assert detect_layout(tmp_path / "calib.txt") == "list"


# ---------------------------------------------------------------- bad data

BAD_KINDS = ["corrupt", "zero", "size_mismatch", "out_of_range", "no_mask"]


def _spoil(root, kind):
    """Break img1 of the folder fixture in one way; returns the file that must be named."""
    image, mask = root / "images" / "img1.png", root / "masks" / "img1.png"
    if kind == "corrupt":
        image.write_bytes(image.read_bytes()[:50])
        return image
    if kind == "zero":
        image.write_bytes(b"")
        return image
    if kind == "size_mismatch":
        write_mask(mask, np.zeros((10, 10), np.uint8))
        return mask
    if kind == "out_of_range":
        write_mask(mask, np.full((32, 48), 7, np.uint8))
        return mask
    if kind == "no_mask":
        mask.unlink()
        return image
    raise ValueError(kind)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_data_raise_policy_names_the_file(folder_root, kind):
    culprit = _spoil(folder_root, kind)
    with pytest.raises(DataError) as info:
        dataset = open_dataset(folder_root, "train", on_error="raise")
        list(dataset)
    assert str(culprit) in str(info.value)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_data_skip_policy_counts_and_names(folder_root, kind, caplog):
    culprit = _spoil(folder_root, kind)
    dataset = open_dataset(folder_root, "train", on_error="skip")
    with caplog.at_level(logging.WARNING, logger="fcn_edge.data"):
        ids = [sample.id for sample in dataset]
        ids_again = [sample.id for sample in dataset]  # a second epoch does not count twice
    assert ids == ids_again == ["img0", "img2", "img3"]
    assert dataset.report.count == 1 and dataset.report.files == [str(culprit)]
    assert str(culprit) in dataset.report.summary()
    assert "skipped 1 bad sample" in caplog.text
    if kind != "no_mask":
        assert dataset[1] is None  # what a DataLoader sees for a skipped sample
        with pytest.raises(DataError):
            dataset.load(1)


def test_validate_drops_bad_entries_for_good(folder_root):
    _spoil(folder_root, "corrupt")
    dataset = open_dataset(folder_root, "train", on_error="skip")
    report = dataset.validate(show_progress=False)
    assert report.count == 1 and len(dataset) == 3 and all(dataset[i] is not None for i in range(3))


def test_conversions_are_notes_not_errors(folder_root):
    gray = cv2.cvtColor(cv2.imread(str(folder_root / "images" / "img2.png")), cv2.COLOR_BGR2GRAY)
    write_png(folder_root / "images" / "img2.png", gray)
    rgba = np.dstack([cv2.imread(str(folder_root / "images" / "img3.png")), np.full((32, 48), 9, np.uint8)])
    write_png(folder_root / "images" / "img3.png", rgba)
    deep = (cv2.imread(str(folder_root / "images" / "img0.png")).astype(np.uint16) * 257)
    write_png(folder_root / "images" / "img0.png", deep)
    dataset = open_dataset(folder_root, "train", on_error="raise")
    samples = list(dataset)
    assert len(samples) == 4 and all(s.image.shape == (32, 48, 3) for s in samples)
    assert dataset.report.count == 0 and dataset.report.notes[NOTE_GRAYSCALE] == 1 and len(dataset.report.notes) == 3
    assert "grayscale" in dataset.report.summary()


def test_datasets_pickle_for_dataloader_workers(folder_root):
    import pickle

    _spoil(folder_root, "corrupt")
    dataset = open_dataset(folder_root, "train", on_error="skip")
    assert dataset[1] is None
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.report.count == 1 and copy[1] is None and copy[0].id == "img0"
    dataset.report.merge(copy.report)
    assert dataset.report.count == 1


def test_on_error_is_checked(folder_root):
    with pytest.raises(ValueError, match="on_error"):
        open_dataset(folder_root, "train", on_error="ignore")


# ---------------------------------------------------------------- PyTorch

def test_torch_dataloader_with_transform_and_skips(folder_root):
    torch = pytest.importorskip("torch")
    from fcn_edge.data import TrainTransform
    from fcn_edge.data.torch_adapter import TorchSegmentationDataset, collate_segmentation
    from fcn_edge.artifacts.modelinfo import Preprocessing

    _spoil(folder_root, "corrupt")
    dataset = open_dataset(folder_root, "train", on_error="skip")
    wrapped = TorchSegmentationDataset(dataset, TrainTransform(crop_size=(24, 24), scale_range=(0.8, 1.2)),
                                       Preprocessing.caffe(), seed=3)
    loader = torch.utils.data.DataLoader(wrapped, batch_size=2, collate_fn=collate_segmentation)
    batches = [batch for batch in loader if batch is not None]
    assert sum(len(b["id"]) for b in batches) == 3
    assert [len(b["id"]) for b in batches] == [1, 2]  # img1 (bad) dropped from the first batch
    first = batches[1]
    assert first["image"].shape == (2, 3, 24, 24) and first["image"].dtype == torch.float32
    assert first["mask"].shape == (2, 24, 24) and first["mask"].dtype == torch.int64
    again = list(torch.utils.data.DataLoader(wrapped, batch_size=2, collate_fn=collate_segmentation))[1]
    assert torch.equal(again["image"], first["image"])  # same seed and epoch -> same augmentation
    wrapped.set_epoch(1)
    other = list(torch.utils.data.DataLoader(wrapped, batch_size=2, collate_fn=collate_segmentation))[1]
    assert not torch.equal(other["image"], first["image"])
