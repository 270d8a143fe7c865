"""Synthetic segmentation data: the built-in dataset for tests, calibration and the demo.

Scenes of textured shapes on textured backgrounds.  Each object class has its own shape
*and* texture *and* hue (class 1: dotted discs, 2: checkered boxes, 3: striped
triangles, 4: ringed blobs, then new shape/texture pairs), but hue, saturation and
brightness are jittered per object, the background has coloured blotches and every pixel
has sensor-like noise, so colour alone is not enough: a network has to look at texture
and shape too.  Shapes are large (radius 14-30 % of the short side) with hard edges, so
a tiny FCN learns the task on a CPU in minutes.

Everything is a pure function of the seed: each image has its own generator seeded with
``(seed, split, index)``, so the same seed gives byte-identical files (for one numpy and
OpenCV build), image ``i`` does not depend on how many images are made, and the
train, val, calibration and video streams never share a scene.

Writers:

* :func:`write_synthetic_dataset` - the generic folder layout (``train/images``,
  ``train/masks``, ``val/...``; masks as VOC-style palette PNGs) plus ``dataset.json``;
* :func:`write_calibration_set` - a folder of images and a list file naming them;
* :func:`write_synthetic_video` - a clip of moving shapes (mp4v .mp4 or MJPG .avi) and,
  optionally, its per-frame label maps.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fcn_edge.data.imageio import IGNORE_INDEX, encode_image, encode_palette_png
from fcn_edge.errors import DataError
from fcn_edge.lazy import opencv
from fcn_edge.artifacts.modelinfo import voc_palette

GENERATOR_VERSION = 1
SHAPES = ("disc", "box", "triangle", "blob")
TEXTURES = ("dots", "checker", "stripes", "rings")
MAX_CLASSES = 1 + len(SHAPES) * len(TEXTURES)  # background + every shape/texture pair

# Stream ids in the per-image seed, so splits never share a scene.
STREAMS = {"train": 0, "val": 1, "calib": 2, "video": 3}

DEFAULT_SIZE = (128, 128)
DEFAULT_CLASSES = 5


# --------------------------------------------------------------------------- classes

@dataclass(frozen=True)
class ClassStyle:
    """How one class looks: shape, texture, hue (0-1) and texture period (fraction of the short side)."""

    index: int
    name: str
    shape: str
    texture: str
    hue: float
    period: float


def class_styles(num_classes: int = DEFAULT_CLASSES) -> list[ClassStyle]:
    """The styles of classes 0..num_classes-1 (0 is the background)."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise DataError(f"the synthetic data has 2 to {MAX_CLASSES} classes (background included), got {num_classes}")
    styles = [ClassStyle(0, "background", "none", "blotches", 0.0, 0.0)]
    objects = num_classes - 1
    for k in range(objects):
        shape = SHAPES[k % len(SHAPES)]
        texture = TEXTURES[(k + k // len(SHAPES)) % len(TEXTURES)]
        name = shape if k < len(SHAPES) else f"{shape}_{texture}"
        hue = (0.08 + k / objects) % 1.0
        period = (0.055, 0.07, 0.085)[(k // len(SHAPES)) % 3]
        styles.append(ClassStyle(k + 1, name, shape, texture, hue, period))
    return styles


def class_names(num_classes: int = DEFAULT_CLASSES) -> list[str]:
    return [style.name for style in class_styles(num_classes)]


def class_palette(num_classes: int = DEFAULT_CLASSES) -> list[tuple[int, int, int]]:
    """Mask colours (RGB): VOC's colour map, so masks look like VOC's in any viewer."""
    return voc_palette(num_classes)


# --------------------------------------------------------------------------- scenes

@dataclass
class SceneObject:
    """One shape in a scene.  Geometry in pixels; ``outline`` is the unit shape (x, y) around 0."""

    cls: int
    outline: np.ndarray
    center: tuple[float, float]
    radius: float
    angle: float
    colour_bgr: tuple[float, float, float]
    texture: str
    period: float
    amplitude: float
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0

    def polygon(self) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        rotation = np.array([[c, -s], [s, c]], dtype=np.float64)
        return self.outline @ rotation.T * self.radius + np.asarray(self.center)


def _outline(shape: str, rng: np.random.Generator) -> np.ndarray:
    if shape == "disc":
        aspect = rng.uniform(0.7, 1.0)
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(t), aspect * np.sin(t)], axis=1)
    if shape == "box":
        aspect = rng.uniform(0.55, 1.0)
        return np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], dtype=np.float64) * 0.85
    if shape == "triangle":
        angles = np.array([90.0, 210.0, 330.0]) + rng.uniform(-18, 18, 3)
        t = np.deg2rad(angles)
        return np.stack([np.cos(t), np.sin(t)], axis=1) * 1.35  # equal area with the others
    if shape == "blob":
        t = np.linspace(0, 2 * np.pi, 9, endpoint=False) + rng.uniform(-0.2, 0.2, 9)
        r = rng.uniform(0.65, 1.0, 9)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    raise ValueError(f"unknown shape {shape!r}")


def _hsv_bgr(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (b * 255.0, g * 255.0, r * 255.0)


def random_object(rng: np.random.Generator, style: ClassStyle, size: tuple[int, int]) -> SceneObject:
    """An object of ``style``'s class at a random place, size, angle and (jittered) colour."""
    h, w = size
    short = min(h, w)
    radius = rng.uniform(0.14, 0.30) * short
    center = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
    colour = _hsv_bgr(style.hue + rng.normal(0, 0.03), rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.95))
    return SceneObject(
        cls=style.index, outline=_outline(style.shape, rng), center=center, radius=radius,
        angle=rng.uniform(0, 2 * np.pi), colour_bgr=colour, texture=style.texture,
        period=style.period * short * rng.uniform(0.85, 1.15), amplitude=rng.uniform(0.25, 0.4),
    )


def _texture(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """A brightness pattern in [-1, 1] in the object's own coordinates (it moves with it)."""
    f = 2 * np.pi / period
    if kind == "dots":
        return np.where(np.cos(f * u) * np.cos(f * v) > 0.35, 1.0, -0.7)
    if kind == "checker":
        return np.sign(np.sin(f * u) * np.sin(f * v) + 1e-9)
    if kind == "stripes":
        return np.sin(f * u)
    if kind == "rings":
        return np.sin(f * np.sqrt(u * u + v * v))
    raise ValueError(f"unknown texture {kind!r}")


def make_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """float32 HxWx3 BGR: smooth coloured blotches (mostly unsaturated) plus a fine grain."""
    cv2 = opencv()
    h, w = size
    grid = rng.integers(3, 7)
    base_hue = rng.uniform(0, 1)
    cells = np.empty((grid, grid, 3), dtype=np.float32)
    for i in range(grid):
        for j in range(grid):
            cells[i, j] = _hsv_bgr(base_hue + rng.normal(0, 0.15), rng.uniform(0.0, 0.45), rng.uniform(0.3, 0.85))
    blotches = cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.normal(0, 14, (h, w)).astype(np.float32), (0, 0), 0.8)
    return blotches + grain[:, :, None]


def draw_objects(canvas: np.ndarray, mask: np.ndarray, objects: Sequence[SceneObject]) -> None:
    """Paint ``objects`` (in order, later on top) into a float BGR canvas and its label mask."""
    cv2 = opencv()
    h, w = mask.shape
    for obj in objects:
        polygon = obj.polygon()
        x0, y0 = np.floor(polygon.min(axis=0)).astype(int)
        x1, y1 = np.ceil(polygon.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1 + 1, w), min(y1 + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        shape_mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        points = np.round((polygon - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(shape_mask, [points], 1, lineType=cv2.LINE_8, shift=4)
        inside = shape_mask.astype(bool)
        if not inside.any():
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        dx, dy = xs + 0.5 - obj.center[0], ys + 0.5 - obj.center[1]
        c, s = math.cos(obj.angle), math.sin(obj.angle)
        u, v = c * dx + s * dy, -s * dx + c * dy
        shade = 1.0 + obj.amplitude * _texture(obj.texture, u, v, obj.period)
        patch = np.asarray(obj.colour_bgr, dtype=np.float32) * shade[:, :, None].astype(np.float32)
        region = canvas[y0:y1, x0:x1]
        region[inside] = patch[inside]
        mask[y0:y1, x0:x1][inside] = obj.cls


def finish_image(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global brightness/contrast jitter and per-pixel noise, then uint8."""
    gain = rng.uniform(0.85, 1.15)
    offset = rng.uniform(-12, 12)
    noise = rng.normal(0, 5.0, canvas.shape).astype(np.float32)
    return np.clip(canvas * gain + offset + noise, 0, 255).round().astype(np.uint8)


def render_scene(rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE,
                 num_classes: int = DEFAULT_CLASSES, max_objects: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 HxWx3 BGR image, uint8 HxW mask) from ``rng``."""
    styles = class_styles(num_classes)
    size = (int(size[0]), int(size[1]))
    canvas = make_background(rng, size)
    count = int(rng.integers(1, max_objects + 1))
    objects = [random_object(rng, styles[int(rng.integers(1, num_classes))], size) for _ in range(count)]
    mask = np.zeros(size, dtype=np.uint8)
    draw_objects(canvas, mask, objects)
    return finish_image(canvas, rng), mask


def scene_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of one image: a function of (seed, stream, index) only."""
    return np.random.default_rng([int(seed), STREAMS[stream], int(index)])


# --------------------------------------------------------------------------- dataset

@dataclass
class SynthConfig:
    """What ``fcn-edge synth`` makes (defaults: a CPU demo's worth of 128x128 images)."""

    train: int = 400
    val: int = 100
    size: tuple[int, int] = DEFAULT_SIZE
    num_classes: int = DEFAULT_CLASSES
    seed: int = 0
    image_format: str = "jpg"
    jpeg_quality: int = 95
    max_objects: int = 4

    def __post_init__(self) -> None:
        self.size = (int(self.size[0]), int(self.size[1]))
        if min(self.size) < 16 or max(self.size) > 4096:
            raise DataError(f"synthetic image size must be 16 to 4096 pixels a side, got {self.size[0]}x{self.size[1]}")
        if self.train < 0 or self.val < 0 or self.train + self.val == 0:
            raise DataError("ask for at least one synthetic image (--train / --val)")
        self.image_format = self.image_format.lower().lstrip(".")
        if self.image_format == "jpeg":
            self.image_format = "jpg"
        if self.image_format not in ("jpg", "png"):
            raise DataError(f"synthetic images are written as jpg or png, got {self.image_format!r}")
        if self.max_objects < 1:
            raise DataError("max_objects must be at least 1")
        class_styles(self.num_classes)  # validates the class count


@dataclass
class SynthSummary:
    root: Path
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def describe_dataset(config: SynthConfig) -> dict:
    """The ``dataset.json`` content: classes, palette, splits, and how it was made."""
    styles = class_styles(config.num_classes)
    palette = class_palette(config.num_classes)
    splits = {name: {"count": count, "images": f"{name}/images", "masks": f"{name}/masks"}
              for name, count in (("train", config.train), ("val", config.val)) if count}
    return {
        "format": "fcn-edge-folder",
        "layout": "split-folders",
        "generator": "fcn-edge synth",
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "size": list(config.size),
        "image_format": config.image_format,
        "num_classes": config.num_classes,
        "class_names": [s.name for s in styles],
        "palette": [list(c) for c in palette],
        "ignore_index": IGNORE_INDEX,
        "classes": [{"index": s.index, "name": s.name, "shape": s.shape, "texture": s.texture,
                     "hue": round(s.hue, 4)} for s in styles],
        "splits": splits,
    }


def write_synthetic_dataset(out: str | os.PathLike, config: SynthConfig | None = None, *,
                            overwrite: bool = False, show_progress: bool = True) -> SynthSummary:
    """Write the synthetic dataset to ``out`` in the folder layout; returns counts and time.

    The folder is built beside ``out`` and moved into place when complete: an existing
    ``out`` (only replaced with ``overwrite=True``) is never left half-rewritten.
    """
    from fcn_edge.progress import progress

    config = config or SynthConfig()
    out = Path(out)
    start = time.perf_counter()
    palette = class_palette(config.num_classes)
    extension = "." + config.image_format

    def fill(folder: Path) -> None:
        total = config.train + config.val
        with (progress(total=total, desc="synth", unit="img") if show_progress else _NoBar()) as bar:
            for split, count in (("train", config.train), ("val", config.val)):
                if not count:
                    continue
                (folder / split / "images").mkdir(parents=True)
                (folder / split / "masks").mkdir(parents=True)
                for index in range(count):
                    image, mask = render_scene(scene_rng(config.seed, split, index), config.size,
                                               config.num_classes, config.max_objects)
                    name = f"{index:05d}"
                    (folder / split / "images" / (name + extension)).write_bytes(
                        encode_image(image, extension, jpeg_quality=config.jpeg_quality))
                    (folder / split / "masks" / (name + ".png")).write_bytes(encode_palette_png(mask, palette))
                    bar.update(1)
        text = json.dumps(describe_dataset(config), indent=2, sort_keys=True) + "\n"
        (folder / "dataset.json").write_text(text, encoding="utf-8")

    build_folder_atomically(out, fill, overwrite=overwrite)
    counts = {"train": config.train, "val": config.val}
    return SynthSummary(out, counts, time.perf_counter() - start)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _NoBar:
    """Stands in for a progress bar when none is wanted."""

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def build_folder_atomically(out: Path, fill, *, overwrite: bool = False) -> Path:
    """Run ``fill(tmp_folder)`` and move the finished folder to ``out``.

    ``out`` may be absent or an empty folder; a non-empty one is replaced only with
    ``overwrite=True``, and only after the new folder is complete.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is a file; give a folder name for the output")
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not overwrite:
        raise DataError(f"{out} already exists and is not empty; pass --overwrite to replace it or choose "
                        "another --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    except OSError as exc:
        raise DataError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    try:
        fill(tmp)
        if out.is_dir():
            if occupied:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
                os.replace(out, old / out.name)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                out.rmdir()
                os.replace(tmp, out)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"could not write {out}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# --------------------------------------------------------------------------- calibration

def write_calibration_set(folder: str | os.PathLike, count: int = 32, *, size: tuple[int, int] = DEFAULT_SIZE,
                          num_classes: int = DEFAULT_CLASSES, seed: int = 0, list_file: str | os.PathLike | None = None,
                          image_format: str = "png", overwrite: bool = False) -> Path:
    """Write ``count`` synthetic images to ``folder`` and a list file naming them; returns the list.

    The list (default ``<folder>.txt`` beside the folder, e.g. ``calib/synth/`` and
    ``calib/synth.txt``) holds paths relative to its own folder, so the pair can move.
    The scenes come from their own stream: none of them is in the training or val split.
    """
    from fcn_edge.data.listfile import write_list_file

    if count < 1:
        raise DataError("a calibration set needs at least one image")
    folder = Path(folder)
    list_path = Path(list_file) if list_file is not None else folder.with_name(folder.name + ".txt")
    extension = "." + image_format.lower().lstrip(".").replace("jpeg", "jpg")
    names = [f"calib_{index:05d}{extension}" for index in range(count)]

    def fill(tmp: Path) -> None:
        for index, name in enumerate(names):
            image, _ = render_scene(scene_rng(seed, "calib", index), size, num_classes)
            (tmp / name).write_bytes(encode_image(image, extension))

    build_folder_atomically(folder, fill, overwrite=overwrite)
    list_path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"fcn-edge synthetic calibration set: {count} images {size[0]}x{size[1]}, seed {seed}; "
              "paths are relative to this file")
    return write_list_file(list_path, [folder / name for name in names], header=header)


# --------------------------------------------------------------------------- video

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


@dataclass
class VideoInfo:
    path: Path
    frames: int
    size: tuple[int, int]
    fps: float
    fourcc: str
    labels_path: Path | None = None


def synthetic_video_frames(frames: int, size: tuple[int, int] = (256, 256), *, seed: int = 0,
                           num_classes: int = DEFAULT_CLASSES, objects: int = 4):
    """Yield (image, mask) for each frame: shapes that glide, spin and bounce off the edges."""
    styles = class_styles(num_classes)
    size = (int(size[0]), int(size[1]))
    h, w = size
    rng = scene_rng(seed, "video", 0)
    background = make_background(rng, size)
    scene = []
    for k in range(objects):
        obj = random_object(rng, styles[1 + k % (num_classes - 1)], size)
        speed = rng.uniform(0.004, 0.012) * min(h, w)
        heading = rng.uniform(0, 2 * np.pi)
        obj.velocity = (speed * math.cos(heading), speed * math.sin(heading))
        obj.spin = rng.uniform(-0.04, 0.04)
        scene.append(obj)
    for _ in range(frames):
        canvas = background.copy()
        mask = np.zeros(size, dtype=np.uint8)
        draw_objects(canvas, mask, scene)
        yield finish_image(canvas, rng), mask
        for obj in scene:
            x, y = obj.center[0] + obj.velocity[0], obj.center[1] + obj.velocity[1]
            vx, vy = obj.velocity
            if not 0 <= x <= w:
                vx = -vx
            if not 0 <= y <= h:
                vy = -vy
            obj.velocity = (vx, vy)
            obj.center = (min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h)))
            obj.angle += obj.spin


def write_synthetic_video(path: str | os.PathLike, frames: int = 90, size: tuple[int, int] = (256, 256),
                          fps: float = 15.0, seed: int = 0, *, num_classes: int = DEFAULT_CLASSES,
                          labels_path: str | os.PathLike | None = None) -> VideoInfo:
    """Write a clip of moving synthetic shapes; ``.mp4`` uses mp4v, ``.avi`` MJPG.

    The file is written under a temporary name, read back to check that OpenCV can
    decode every frame, then moved into place.  With ``labels_path`` the ground-truth
    label maps are saved as ``.npz`` (``labels``: uint8 [N, H, W], ``class_names``).
    """
    from fcn_edge.fileio import atomic_path

    cv2 = opencv()
    path = Path(path)
    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise DataError(f"cannot write video {path}: use a .mp4 (mp4v) or .avi (MJPG) file name")
    if frames < 1 or fps <= 0:
        raise DataError("a video needs at least one frame and a positive frame rate")
    h, w = int(size[0]), int(size[1])
    labels = np.zeros((frames, h, w), dtype=np.uint8) if labels_path is not None else None
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if not writer.isOpened():
            raise DataError(f"this OpenCV build cannot write {codec} video ({path.suffix}); "
                            "try the other of .mp4 / .avi")
        try:
            for index, (image, mask) in enumerate(synthetic_video_frames(frames, (h, w), seed=seed,
                                                                         num_classes=num_classes)):
                writer.write(image)
                if labels is not None:
                    labels[index] = mask
        finally:
            writer.release()
        readable = count_video_frames(tmp)
        if readable != frames:
            raise DataError(f"video {path} was written but only {readable} of {frames} frames read back; "
                            "this OpenCV build's video support looks broken")
    saved_labels = None
    if labels_path is not None:
        saved_labels = Path(labels_path)

        def save(tmp_path: Path) -> None:
            with open(tmp_path, "wb") as handle:
                np.savez_compressed(handle, labels=labels, class_names=np.array(class_names(num_classes)))

        from fcn_edge.fileio import atomic_write_with
        atomic_write_with(saved_labels, save)
    return VideoInfo(path, frames, (h, w), float(fps), codec, saved_labels)


def count_video_frames(path: str | os.PathLike) -> int:
    """Frames OpenCV can actually decode from ``path`` (reads them all)."""
    cv2 = opencv()
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return 0
        count = 0
        while True:
            ok, _frame = capture.read()
            if not ok:
                break
            count += 1
        return count
    finally:
        capture.release()
