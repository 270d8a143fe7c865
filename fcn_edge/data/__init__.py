"""Datasets, transforms, robust image/mask I/O and the synthetic data generator.

Importing this package needs only numpy: OpenCV is imported when pixels are first
read, written or resized, scipy when an SBD .mat mask is read, torch only by
:mod:`fcn_edge.data.torch_adapter` when a sample becomes a tensor.

Conventions every stage relies on
---------------------------------
* image: ``numpy.uint8`` ``HxWx3`` in **BGR** order (OpenCV/camera order);
* mask: ``numpy.uint8`` ``HxW`` class indices, **255 = ignore** (VOC's "void");
* sizes are ``(H, W)``;
* every problem with a file is a :class:`fcn_edge.errors.DataError` naming the file.

Reading and writing (:mod:`fcn_edge.data.imageio`)
    ``read_image(path) -> ndarray``; ``load_image(path) -> LoadedImage(pixels, name, notes)``;
    ``decode_image(data, name) -> LoadedImage``;
    ``read_mask(path, *, num_classes=None, ignore_index=255, palette=None) -> ndarray``
    (palette PNGs read as indices); ``decode_mask(data, name, ...)``;
    ``check_labels(mask, num_classes, *, ignore_index=255, name=...)``;
    ``write_mask(path, mask, palette_rgb=None)`` / ``encode_palette_png(mask, palette_rgb=None)``
    (VOC-style palette PNG); ``write_image(path, image, *, jpeg_quality=95)``;
    ``encode_image(image, extension, *, jpeg_quality=95)``; ``read_palette(path)``.

Datasets (:mod:`fcn_edge.data.base`, ``voc``, ``sbd``, ``folder``, ``detect``)
    ``open_dataset(path, split=None, *, layout=None, on_error="raise", num_classes=None, **options)``
    detects VOC / SBD / folder / list layouts; ``detect_layout(path)``;
    ``open_images(path, *, on_error="raise")`` for image-only sets (folder, list, file).
    Classes: ``VocDataset(root, split="train", *, mask_folder="SegmentationClass")``,
    ``SbdDataset(root, split="train")``, ``FolderDataset(root, split=None, *, mask_suffix="",
    require_masks=True)``, ``ImageListDataset(list_file)``, ``ImageFolderDataset(folder)``,
    all :class:`SegmentationDataset`: ``len(ds)``; ``ds[i] -> Sample | None`` (None = skipped
    under ``on_error="skip"``); ``iter(ds)`` yields good samples only; ``ds.load(i)``
    always raises on a bad file; ``ds.validate()``; ``ds.subset(indices)``; ``ds.describe()``;
    attributes ``num_classes``, ``class_names``, ``palette`` (RGB), ``ignore_index``,
    ``entries`` (``Entry(id, image_path, mask_path)``), ``report`` (:class:`DataReport`:
    ``count``, ``files``, ``skipped``, ``notes``, ``summary()``, ``log_summary()``, ``merge()``).
    ``Sample(image, mask, id, image_path, mask_path, index)``.

Lists (:mod:`fcn_edge.data.listfile`)
    ``read_list_file(path) -> list[list[str]]``, ``read_ids(path)``, ``read_image_list(path)
    -> list[Path]``, ``write_list_file(path, items, header=None)``, ``parse_list_text(text, name)``.

Transforms (:mod:`fcn_edge.data.transforms`)
    ``resize_for_network(frame, (H, W))`` - THE frame-to-network resize (INTER_LINEAR) shared
    by runner, calibration and eval; ``resize_labels(labels, (H, W))`` and
    ``labels_to_size(prediction, (H, W))`` (INTER_NEAREST); ``TrainTransform(crop_size,
    scale_range, flip, fill, ignore_index)(image, mask, rng)``; ``EvalTransform(size)(image,
    mask)`` and ``EvalTransform.restore(prediction, label_size)``; pieces ``scale``,
    ``pad_to``, ``crop``, ``hflip``; ``mean_fill_colour(preprocessing)``;
    ``to_network_input(image, preprocessing) -> float32 3xHxW``.

Synthetic data (:mod:`fcn_edge.data.synth`, command ``fcn-edge synth``)
    ``write_synthetic_dataset(out, SynthConfig(train, val, size, num_classes, seed,
    image_format), *, overwrite=False)``; ``write_calibration_set(folder, count, *, size,
    num_classes, seed, list_file=None)``; ``write_synthetic_video(path, frames, size, fps,
    seed, *, num_classes, labels_path=None) -> VideoInfo``; ``count_video_frames(path)``;
    ``render_scene(rng, size, num_classes)``, ``scene_rng(seed, stream, index)``,
    ``class_names(k)``, ``class_palette(k)``.

PyTorch (:mod:`fcn_edge.data.torch_adapter`, torch imported lazily)
    ``TorchSegmentationDataset(dataset, transform=None, preprocessing=None, seed=0)`` with
    ``set_epoch(e)``; ``collate_segmentation(batch)``.
"""

from fcn_edge.data.base import Entry, ImageListDataset, Sample, SegmentationDataset
from fcn_edge.data.detect import LAYOUTS, detect_layout, open_dataset, open_images
from fcn_edge.data.folder import FolderDataset, ImageFolderDataset
from fcn_edge.data.imageio import (
    IGNORE_INDEX,
    IMAGE_EXTENSIONS,
    LoadedImage,
    check_labels,
    decode_image,
    decode_mask,
    encode_image,
    encode_palette_png,
    load_image,
    read_image,
    read_mask,
    read_palette,
    write_image,
    write_mask,
)
from fcn_edge.data.listfile import read_ids, read_image_list, read_list_file, write_list_file
from fcn_edge.data.report import BadItem, DataReport
from fcn_edge.data.sbd import SbdDataset
from fcn_edge.data.transforms import (
    EvalTransform,
    TrainTransform,
    labels_to_size,
    mean_fill_colour,
    resize_for_network,
    resize_labels,
    to_network_input,
)
from fcn_edge.data.voc import VocDataset

__all__ = [
    "IGNORE_INDEX", "IMAGE_EXTENSIONS", "LAYOUTS",
    "BadItem", "DataReport", "Entry", "EvalTransform", "FolderDataset", "ImageFolderDataset", "ImageListDataset",
    "LoadedImage", "Sample", "SbdDataset", "SegmentationDataset", "TrainTransform", "VocDataset",
    "check_labels", "decode_image", "decode_mask", "detect_layout", "encode_image", "encode_palette_png",
    "labels_to_size", "load_image", "mean_fill_colour", "open_dataset", "open_images", "read_ids",
    "read_image", "read_image_list", "read_list_file", "read_mask", "read_palette", "resize_for_network",
    "resize_labels", "to_network_input", "write_image", "write_list_file", "write_mask",
]
