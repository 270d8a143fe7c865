"""Calibration images: from a folder, a list file, a video or a dataset, to network-ready frames.

Every image goes through exactly what the deployed model sees: decoded as uint8 BGR
(:mod:`fcn_edge.data.imageio`), resized with :func:`fcn_edge.data.resize_for_network`
(the runner's one resize) to the network size, and put in the channel order the model's
input expects.  The frames graph normalises them itself; raw-I/O graphs get
:func:`fcn_edge.runtime.preprocess.frames_to_raw` (the runner's host-side twin of the
graph's normalisation) when they are fed (:mod:`.reader`).

Sampling is deterministic and spread over the source: ``N`` of ``T`` items are the
centres of ``N`` equal slices (index ``floor((i + 0.5) * T / N)``), so a folder sorted by
time or a video gives images from its whole length, and the same source and ``N`` give
the same set on every machine.  A bad image is skipped, counted in the data report and
replaced by the nearest unused item, so ``N`` good images are used when the source has
them.  Videos are read once, front to back (seeking is unreliable across codecs).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from fcn_edge.data.report import DataReport
from fcn_edge.errors import DataError

log = logging.getLogger("fcn_edge.calib")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".h264", ".mjpeg")


@dataclass
class CalibrationImage:
    """One image as fed to calibration: where it came from and the network-ready frame."""

    name: str               # file path, or "video.mp4#frame=123"
    frame: np.ndarray       # uint8 HxWx3 at the network size, in the model's input channel order
    sha256: str             # of the source file's bytes (images) or the decoded pixels (video frames)
    index: int              # position in the source


@dataclass
class CalibrationSet:
    """The sampled images plus how they were chosen (recorded in the ranges JSON)."""

    source: str
    kind: str                                 # images | list | video | voc | sbd | folder | image
    images: list[CalibrationImage]
    available: int                            # items in the source
    report: DataReport
    held_out: list[CalibrationImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def frames(self) -> list[np.ndarray]:
        return [image.frame for image in self.images]

    @property
    def sha256(self) -> str:
        """One hash over the frames actually fed (pixels and order): equal sets, equal hash."""
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(np.ascontiguousarray(image.frame).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "available": self.available,
            "used": len(self.images),
            "skipped": self.report.to_dict()["skipped"],
            "skipped_count": self.report.count,
            "frames_sha256": self.sha256,
            "images": [{"name": im.name, "index": im.index, "sha256": im.sha256} for im in self.images],
        }


# --------------------------------------------------------------------------- sampling

def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices of ``range(total)``, one from the centre of each of ``count`` equal slices."""
    if total <= 0 or count <= 0:
        return []
    if count >= total:
        return list(range(total))
    return [min(total - 1, int((i + 0.5) * total / count)) for i in range(count)]


def nearest_unused(index: int, total: int, used: set[int]) -> int | None:
    """The closest index to ``index`` (after it first, then before it) that is not in ``used``."""
    for step in range(1, total):
        for candidate in (index + step, index - step):
            if 0 <= candidate < total and candidate not in used:
                return candidate
    return None


def sample_items(total: int, count: int, load: Callable[[int], CalibrationImage | None]) -> list[CalibrationImage]:
    """Load ``count`` good items spread over ``range(total)``; bad ones (``load`` -> None) are replaced.

    The result is in source order.  Deterministic: it depends only on ``total``,
    ``count`` and which items are bad.
    """
    chosen: dict[int, CalibrationImage] = {}
    tried: set[int] = set()
    for index in spread_indices(total, count):
        candidate: int | None = index if index not in tried else nearest_unused(index, total, tried)
        while candidate is not None:
            tried.add(candidate)
            item = load(candidate)
            if item is not None:
                chosen[candidate] = item
                break
            candidate = nearest_unused(index, total, tried)
    return [chosen[i] for i in sorted(chosen)]


# --------------------------------------------------------------------------- opening a source

class FrameMaker:
    """Decoded BGR image -> the network-ready frame (the runner's resize, then channel order)."""

    def __init__(self, size: tuple[int, int], channel_order: str = "BGR") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.channel_order = channel_order.upper()

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        from fcn_edge.data.transforms import resize_for_network

        frame = resize_for_network(image_bgr, self.size)
        if self.channel_order == "RGB":
            frame = frame[:, :, ::-1]
        return np.ascontiguousarray(frame, dtype=np.uint8)


def source_kind(path: Path, split: str | None = None) -> str:
    """What ``path`` is: ``video``, ``list``, ``image``, ``voc``, ``sbd``, ``folder`` or ``images``."""
    from fcn_edge.data.detect import detect_layout
    from fcn_edge.data.imageio import IMAGE_EXTENSIONS

    if not path.exists():
        raise DataError(f"calibration source {path} does not exist; give an image folder, a .txt list of images, "
                        "a video file or a dataset folder")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".txt":
            return "list"
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        raise DataError(f"calibration source {path} is neither an image, a .txt list of images nor a video "
                        f"({', '.join(VIDEO_EXTENSIONS)})")
    try:
        layout = detect_layout(path)
    except DataError:
        return "images"
    return layout if layout in ("voc", "sbd", "folder") else "images"


def _dataset_for(path: Path, kind: str, split: str | None):
    from fcn_edge.data.detect import open_dataset, open_images
    from fcn_edge.data.folder import folder_splits

    if kind in ("list", "image", "images"):
        if split is not None:
            raise DataError(f"--split {split} is for datasets (VOC, SBD, folder layouts); {path} is a plain "
                            f"{'list' if kind == 'list' else 'image folder'}")
        if kind == "images" and path.is_dir() and (path / "images").is_dir():
            return open_images(path / "images", on_error="skip")
        return open_images(path, on_error="skip")
    if kind == "folder":
        if split is None and not (path / "images").is_dir():
            splits = folder_splits(path)
            split = "train" if "train" in splits else (splits[0] if splits else None)
        return open_dataset(path, split, layout="folder", on_error="skip", require_masks=False)
    return open_dataset(path, split, layout=kind, on_error="skip")


def collect_images(source: str | Path, num: int, maker: FrameMaker, *, split: str | None = None,
                   held_out: int = 0, show_progress: bool = True) -> CalibrationSet:
    """Sample ``num`` images (and up to ``held_out`` others for checks) from ``source``.

    Held-out images are spread over the items the calibration set did not use, so the
    label-free agreement check never scores an image the ranges were computed on.
    """
    from fcn_edge.progress import progress

    path = Path(source)
    kind = source_kind(path, split)
    if kind == "video":
        if split is not None:
            raise DataError(f"--split {split} is for datasets; {path} is a video")
        return _collect_video(path, num, maker, held_out=held_out, show_progress=show_progress)
    dataset = _dataset_for(path, kind, split)
    report = dataset.report
    total = len(dataset)
    bar = progress(total=min(num, total), desc="collecting calibration images", unit="img",
                   disable=not show_progress)

    def load(index: int, count_bar: bool = True) -> CalibrationImage | None:
        sample = dataset.get(index)
        if sample is None:
            return None
        try:
            frame = maker(sample.image)
        except ValueError as exc:
            report.add(sample.id, sample.image_path, str(exc))
            return None
        if count_bar:
            bar.update(1)
        return CalibrationImage(str(sample.image_path), frame, _file_sha256(sample.image_path), index)

    with bar:
        images = sample_items(total, num, load)
    extra: list[CalibrationImage] = []
    if held_out > 0:
        used = {im.index for im in images}
        rest = [i for i in range(total) if i not in used]
        picks = sample_items(len(rest), held_out, lambda j: load(rest[j], count_bar=False))
        extra = picks
    if report.count:
        report.log_summary(log)
    if not images:
        raise DataError(f"calibration source {path} has no usable images ({report.count} bad, see above)")
    return CalibrationSet(str(path), kind, images, total, report, extra)


def _file_sha256(path: Path) -> str:
    from fcn_edge.fileio import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return ""


# --------------------------------------------------------------------------- video

def _open_capture(path: Path):
    from fcn_edge.lazy import opencv

    cv2 = opencv()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"cannot open video {path}: OpenCV's video support cannot decode it (try re-encoding to "
                        "H.264 .mp4 or MJPEG .avi, or extract frames to a folder)")
    return capture, cv2


def _iter_video(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    capture, _cv2 = _open_capture(path)
    try:
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield index, frame
            index += 1
    finally:
        capture.release()


def _video_frame_count(path: Path) -> int:
    capture, cv2 = _open_capture(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    return count


def _collect_video(path: Path, num: int, maker: FrameMaker, *, held_out: int, show_progress: bool) -> CalibrationSet:
    """Frames spread evenly over the video, read in one pass (two when the container's count lies)."""
    from fcn_edge.progress import progress

    report = DataReport(f"video {path}")
    claimed = _video_frame_count(path)
    for attempt in range(2):
        total = claimed if attempt == 0 and claimed > 0 else sum(1 for _ in _iter_video(path))
        if total <= 0:
            raise DataError(f"video {path} has no frames OpenCV can decode")
        wanted = spread_indices(total, num)
        chosen = set(wanted)
        rest = [i for i in range(total) if i not in chosen]
        held = {rest[j] for j in spread_indices(len(rest), held_out)} if held_out else set()
        images: dict[int, CalibrationImage] = {}
        extra: dict[int, CalibrationImage] = {}
        seen = 0
        with progress(total=len(wanted), desc="collecting calibration frames", unit="frame",
                      disable=not show_progress) as bar:
            for index, frame in _iter_video(path):
                seen = index + 1
                if index in chosen or index in held:
                    try:
                        network_frame = maker(frame)
                    except ValueError as exc:
                        report.add(f"frame {index}", f"{path}#frame={index}", str(exc))
                        continue
                    item = CalibrationImage(f"{path}#frame={index}", network_frame,
                                            hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest(), index)
                    if index in chosen:
                        images[index] = item
                        bar.update(1)
                    else:
                        extra[index] = item
                if index >= max(chosen | held | {0}):
                    break
        if seen >= total or len(images) == len(wanted):
            break
        log.info("video %s: the container claims %d frames but only %d decode; re-sampling over %d",
                 path, claimed, seen, seen)
        claimed = seen
    if not images:
        raise DataError(f"video {path} has no frames OpenCV can decode")
    return CalibrationSet(str(path), "video", [images[i] for i in sorted(images)], total, report,
                          [extra[i] for i in sorted(extra)])


def frames_as_batches(frames: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    """Stack frames into batches of exactly ``batch`` (the last one filled with the first frames).

    A model with a static batch of 4 takes exactly 4 frames; repeating the set's first
    frames keeps every batch legal without inventing pixels.  Callers count real frames.
    """
    batch = max(1, int(batch))
    out = []
    for start in range(0, len(frames), batch):
        chunk = list(frames[start:start + batch])
        filler = 0
        while len(chunk) < batch:
            chunk.append(frames[filler % len(frames)])
            filler += 1
        out.append(np.stack(chunk))
    return out
