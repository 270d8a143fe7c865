"""What the runtime assumes for a model that does not describe itself, said out loud.

fcn-edge's own artifacts always describe themselves (ONNX metadata written by
``fcn-edge export``, the engine's JSON sidecar written by ``fcn-edge build-engine``),
and a description that is present but broken is an error (see
:func:`fcn_edge.export.parse_metadata_props`).  A model from another tool -- an ONNX
someone exported with their own script, an engine built with ``trtexec`` -- carries
none, and refusing it would stop a user who only wants to see it run.  Such a model
still runs, with a warning naming what was assumed:

* a ``frames`` model (uint8 NHWC in) has its pre-processing inside the graph, so only
  the class names and palette are unknown: VOC's for 21 classes, ``class_<i>`` else;
* a ``raw`` model (float NCHW in) takes normalised floats as they are; uint8 frames
  given to it are normalised on the host with the Caffe BGR mean (the converted
  reference weights' preprocessing), which is a guess the warning states.

Pass ``info=ModelInfo(...)`` to the runner (or export the checkpoint with ``fcn-edge
export``) to replace the guess.
"""

from __future__ import annotations

import logging
import os

from fcn_edge.artifacts.modelinfo import ModelInfo

log = logging.getLogger(__name__)

DEFAULT_CLASSES = 21  # PASCAL VOC, the paper's dataset


def assume_model_info(where: str | os.PathLike, *, io_kind: str, num_classes: int | None = None) -> ModelInfo:
    """A stand-in :class:`ModelInfo` for an undescribed model, with one warning saying what is assumed."""
    info = ModelInfo(num_classes=num_classes or DEFAULT_CLASSES)
    names = "VOC class names" if info.num_classes == DEFAULT_CLASSES else f"{info.num_classes} generic class names"
    guessed = "" if io_kind == "frames" else (
        "; uint8 frames given to it are normalised with the Caffe BGR mean (no std scaling)")
    log.warning("%s carries no fcn-edge model description: using %s and the VOC palette%s; pass "
                "info=ModelInfo(...) or export the checkpoint with fcn-edge export to describe it",
                where, names, guessed)
    return info
