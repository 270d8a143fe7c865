"""``build-engine --verify DATA [--max-drop X]``: the built engine against the FP32 ONNX, before it is written.

``fcn-edge calibrate`` measures the INT8 *ONNX* with ONNX Runtime on the CPU; TensorRT
picks its own kernels (and fuses, and may run layers in other precisions), so the engine
can lose more.  This runs the engine that was just built (from a scratch copy, through
the deployed TensorRT runner) and the FP32 ONNX (ONNX Runtime, CPU) on the same frames:
pixel agreement of their labels and, on a labelled set, mean IU of each.  The figures
go into the sidecar's ``int8.engine_accuracy``; ``--max-drop`` (mean IU points) or
``--min-agreement`` (%) missed fails the build and nothing is written.

The FP32 reference is the ONNX given to build-engine when it is FP32 (``--calib``), else
the FP32 ONNX the INT8 ONNX was calibrated from (its ``calibration.source_onnx_name``,
beside it, SHA-256 checked).  Where TensorRT is absent the tests pass an ONNX Runtime
``opener`` in place of the engine runner; the logic is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.fileio import sha256_file

DEFAULT_VERIFY_IMAGES = 50


class EngineBudgetMissed(FcnEdgeError):
    """The built engine loses more against the FP32 ONNX than ``--max-drop``/``--min-agreement`` allow."""


@dataclass(frozen=True)
class VerifyRequest:
    """What ``--verify`` asks: the data, the budget (either may be None), how many images at most."""

    data: Path
    max_drop: float | None = None
    min_agreement: float | None = None
    images: int = DEFAULT_VERIFY_IMAGES


def check_verify_options(verify: "str | Path | None", max_drop: float | None, min_agreement: float | None,
                         images: int | None, precision: str | None) -> VerifyRequest | None:
    """The CLI's options as a VerifyRequest (None without --verify), or one sentence saying what is wrong."""
    if verify is None:
        if max_drop is not None or min_agreement is not None:
            raise FcnEdgeError("--max-drop/--min-agreement judge the built engine: give --verify DATA (a labelled dataset "
                               "or images) as well")
        if images is not None:
            raise FcnEdgeError("--verify-images needs --verify DATA")
        return None
    if precision is not None and precision not in ("int8", "best"):
        raise FcnEdgeError(f"--verify measures an INT8 engine against the FP32 ONNX; --precision {precision} has "
                           "nothing to measure (use --precision int8)")
    if not Path(verify).exists():
        raise FcnEdgeError(f"--verify {verify} does not exist; give a labelled dataset folder or an image source")
    if max_drop is not None and not 0.0 <= max_drop <= 100.0:
        raise FcnEdgeError(f"--max-drop is mean IU points between 0 and 100, got {max_drop:g}")
    if min_agreement is not None and not 0.0 < min_agreement <= 100.0:
        raise FcnEdgeError(f"--min-agreement is a percentage above 0 and at most 100, got {min_agreement:g}")
    if images is not None and images < 1:
        raise FcnEdgeError(f"--verify-images must be at least 1, got {images}")
    return VerifyRequest(Path(verify), max_drop, min_agreement, images or DEFAULT_VERIFY_IMAGES)


def reference_onnx(onnx_path: Path, export_info: dict[str, Any]) -> Path:
    """The FP32 ONNX to compare the engine with (see the module doc)."""
    if export_info.get("precision", "fp32") == "fp32":
        return onnx_path
    calibration = export_info.get("calibration") or {}
    name, digest = calibration.get("source_onnx_name"), calibration.get("source_onnx_sha256")
    candidate = onnx_path.with_name(name) if name else None
    if candidate is None or not candidate.is_file():
        raise ArtifactError(f"--verify compares with the FP32 ONNX {onnx_path.name} was calibrated from "
                            f"({name or 'not recorded'}), which is not beside it; copy it there or build with --calib")
    if digest and sha256_file(candidate) != digest:
        raise ArtifactError(f"{candidate} is not the FP32 ONNX {onnx_path.name} was calibrated from (SHA-256 differs); "
                            "put that file beside it")
    return candidate


def measure_engine(engine_path: Path, reference: Path, request: VerifyRequest, *, info: Any, facts: Any,
                   opener: Callable[[Path], Any] | None = None) -> dict[str, Any]:
    """Engine vs FP32 ONNX on ``request.data``: the sidecar's ``int8.engine_accuracy`` figures."""
    from fcn_edge.calib.accuracy import agreement, predict, score

    eval_set = _eval_set(request, info, facts)
    fp32 = predict(reference, eval_set.frames)
    engine = predict(engine_path, eval_set.frames, opener=opener or _open_engine)
    agree, worst = agreement(fp32, engine)
    fp32_scores, engine_scores = score(eval_set, fp32), score(eval_set, engine)
    labelled = fp32_scores is not None and engine_scores is not None
    return {"kind": eval_set.kind, "images": len(eval_set), "source": str(request.data),
            "agreement": round(agree, 6), "worst_image_agreement": round(worst, 6),
            "mean_iu_fp32": round(fp32_scores["mean_iu"], 6) if labelled else None,
            "mean_iu_int8": round(engine_scores["mean_iu"], 6) if labelled else None,
            "mean_iu_drop": round(100.0 * (fp32_scores["mean_iu"] - engine_scores["mean_iu"]), 4) if labelled else None,
            "reference_onnx": reference.name, "measured_with": "engine: TensorRT runner; FP32: ONNX Runtime CPU"}


def check_budget(figures: dict[str, Any], request: VerifyRequest) -> None:
    """Raise EngineBudgetMissed when the figures miss ``--max-drop``/``--min-agreement``."""
    drop = figures.get("mean_iu_drop")
    if request.max_drop is not None:
        if drop is None:
            raise EngineBudgetMissed(f"--max-drop needs mean IU, but --verify {request.data} has no labels; give a "
                                     "labelled dataset or use --min-agreement")
        if drop > request.max_drop:
            raise EngineBudgetMissed(f"the engine loses {drop:.2f} points of mean IU against the FP32 ONNX on "
                                     f"{figures['images']} images (--max-drop {request.max_drop:g}); nothing was written")
    if request.min_agreement is not None and 100.0 * figures["agreement"] < request.min_agreement:
        raise EngineBudgetMissed(f"the engine's labels agree with the FP32 ONNX on {100 * figures['agreement']:.2f}% of "
                                 f"pixels (--min-agreement {request.min_agreement:g}); nothing was written")


def _eval_set(request: VerifyRequest, info: Any, facts: Any):
    """The labelled set at ``request.data`` (images + masks), else its images for agreement only."""
    from fcn_edge.calib.accuracy import EvalSet, load_labelled
    from fcn_edge.calib.sources import FrameMaker, collect_images
    from fcn_edge.errors import DataError

    order = facts.input_channel_order if facts.io == "frames" else info.preprocessing.input_channel_order
    maker = FrameMaker(tuple(facts.size), order)
    try:
        return load_labelled(request.data, maker, split=None, limit=request.images, num_classes=info.num_classes,
                             show_progress=False)
    except DataError:
        images = collect_images(request.data, request.images, maker, split=None, held_out=0, show_progress=False)
        return EvalSet("images", [im.frame for im in images.images], None, [im.name for im in images.images],
                       str(request.data))


def _open_engine(path: Path):
    from fcn_edge.runtime import open_runner

    return open_runner(path)


def int8_sidecar_entry(export_info: dict[str, Any], engine_accuracy: dict[str, Any] | None) -> dict[str, Any]:
    """The sidecar's ``int8`` entry: calibrate's keep-float set and accuracy, and --verify's figures."""
    calibration = export_info.get("calibration") or {}
    budget = calibration.get("budget") or None
    return {"keep_float": dict(calibration.get("keep_float") or {}),
            "keep_float_searched": list(calibration.get("keep_float_searched") or []),
            "onnx_accuracy": calibration.get("accuracy"),
            "budget": None if budget is None else {"max_drop": budget.get("max_drop"),
                                                   "min_agreement": budget.get("min_agreement")},
            "engine_accuracy": engine_accuracy}
