"""Self-describing checkpoints: one file holds the model's description and its weights.

A checkpoint is a ``torch.save`` of plain data only (dicts, lists, strings, numbers,
tensors), so it loads with ``torch.load(weights_only=True)``: loading a file never runs
code from it.  Layout::

    {
      "format": "fcn-edge-checkpoint", "format_version": 1,
      "fcn_edge_version": "0.1.0",
      "model": ModelInfo.to_dict(),          # arch, geometry, width, classes, palette, preprocessing
      "training": {...},                     # free-form: recipe, iteration, metrics, data
      "state_dict": {...},                   # the weights
      "resume": {...} | absent,              # optimiser/scheduler/RNG for `fcn-edge train --resume`
    }

Bare state_dicts (the PyTorch port's ``fcn8s_from_caffe.pth`` and siblings) load too:
the architecture is inferred from the keys and the rest comes from the caller or VOC
defaults (21 classes, BGR, Caffe mean, no std).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge import __version__
from fcn_edge.errors import ArtifactError
from fcn_edge.fileio import atomic_path, require_file
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing

FORMAT = "fcn-edge-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A model description plus weights (and, optionally, training state)."""

    info: ModelInfo
    state_dict: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    path: Path | None = None

    def build_model(self, geometry: str | None = None, strict: bool = True):
        """Instantiate the model with these weights (optionally in another geometry)."""
        from fcn_edge.models import build_model

        model = build_model(self.info.arch, self.info.num_classes, geometry or self.info.geometry, self.info.width)
        try:
            model.load_state_dict(self.state_dict, strict=strict)
        except RuntimeError as exc:
            where = f" in {self.path}" if self.path else ""
            raise ArtifactError(f"weights{where} do not fit {self.info.arch} (width {self.info.width}, "
                                f"{self.info.num_classes} classes): {_summarise_load_error(exc)}") from exc
        return model

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fcn_edge_version": __version__,
            "model": self.info.to_dict(),
            "training": self.training,
            "state_dict": self.state_dict,
        }
        if self.resume is not None:
            payload["resume"] = self.resume
        return payload


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically (temporary file + rename)."""
    torch = require("torch", purpose="to write checkpoints")
    payload = checkpoint.to_payload()
    payload["state_dict"] = {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def save_model(path: str | os.PathLike, model, info: ModelInfo, training: dict[str, Any] | None = None,
               resume: dict[str, Any] | None = None) -> Path:
    """Convenience: save an ``nn.Module`` (DDP-wrapped or not) with its description."""
    module = getattr(model, "module", model)
    info = info.replace(geometry=getattr(module, "geometry", info.geometry))
    return save_checkpoint(path, Checkpoint(info, module.state_dict(), training or {}, resume))


def load_checkpoint(path: str | os.PathLike, *, info: ModelInfo | None = None,
                    overrides: dict[str, Any] | None = None) -> Checkpoint:
    """Load a checkpoint of ours or a bare state_dict, without running code from the file.

    ``info`` describes a bare state_dict (defaults: VOC, inferred architecture);
    ``overrides`` replace fields of the stored description (e.g. ``{"geometry": ...}``).
    Any problem is an :class:`ArtifactError` naming the file and what is wrong.
    """
    path = require_file(path, "checkpoint", ArtifactError)  # before importing torch: a missing file fails at once
    torch = require("torch", purpose="to read .pt checkpoints")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses anyway
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/truncated/pickled-code files all land here
        raise ArtifactError(f"checkpoint {path} cannot be read: {describe_load_failure(exc, path)}") from exc

    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        version = payload.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(f"checkpoint {path} has format version {version!r}; this fcn-edge "
                                f"({__version__}) reads up to {FORMAT_VERSION}: upgrade fcn-edge")
        state = payload.get("state_dict")
        if not isinstance(state, dict) or not state:
            raise ArtifactError(f"checkpoint {path} has no weights (empty state_dict)")
        try:
            model_info = ModelInfo.from_dict({**payload.get("model", {}), **(overrides or {})})
        except ArtifactError as exc:
            raise ArtifactError(f"checkpoint {path}: {exc}") from exc
        ckpt = Checkpoint(model_info, state, payload.get("training") or {}, payload.get("resume"), path)
    else:
        state = _bare_state_dict(payload, path)
        arch = infer_architecture(state)
        if arch is None:
            raise ArtifactError(f"{path} is a state_dict but not an FCN's (no conv1_1/fc6/score_fr keys)")
        base = info.to_dict() if info else {}
        base.setdefault("arch", arch)
        base["arch"] = base.get("arch") or arch
        if info is None:
            base["num_classes"] = int(state["score_fr.weight"].shape[0])
            base["width"] = infer_width(state)
            base["preprocessing"] = Preprocessing.caffe().to_dict()
        try:
            model_info = ModelInfo.from_dict({**base, **(overrides or {})})
        except ArtifactError as exc:
            raise ArtifactError(f"checkpoint {path}: {exc}") from exc
        ckpt = Checkpoint(model_info, state, {"source": "bare state_dict"}, None, path)

    _check_consistency(ckpt)
    return ckpt


def infer_architecture(state: dict[str, Any]) -> str | None:
    """Name the FCN variant from a state_dict's keys (the port's naming)."""
    if not all(k in state for k in ("conv1_1.weight", "fc6.weight", "score_fr.weight")):
        return None
    if "upscore8.weight" in state:
        return "fcn8s"  # at-once has the same keys; the caller says so when it matters
    if "upscore16.weight" in state:
        return "fcn16s"
    if "upscore.weight" in state:
        return "fcn32s"
    return None


def infer_width(state: dict[str, Any]) -> float:
    """The width multiplier from conv1_1's channel count (64 at width 1)."""
    return float(state["conv1_1.weight"].shape[0]) / 64.0


def _bare_state_dict(payload: Any, path: Path) -> dict[str, Any]:
    if isinstance(payload, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = payload.get(key)
            if isinstance(inner, dict) and any(hasattr(v, "shape") for v in inner.values()):
                payload = inner
                break
        if payload and all(isinstance(k, str) for k in payload):
            # DataParallel/DDP prefixes
            if all(k.startswith("module.") for k in payload):
                payload = {k[len("module."):]: v for k, v in payload.items()}
            return payload
    raise ArtifactError(f"{path} holds neither an fcn-edge checkpoint nor a state_dict")


def _check_consistency(ckpt: Checkpoint) -> None:
    state = ckpt.state_dict
    where = ckpt.path
    score = state.get("score_fr.weight")
    if score is None or not hasattr(score, "shape"):
        raise ArtifactError(f"checkpoint {where} lacks score_fr.weight: not an FCN checkpoint")
    if int(score.shape[0]) != ckpt.info.num_classes:
        raise ArtifactError(f"checkpoint {where} describes {ckpt.info.num_classes} classes but its "
                            f"weights have {int(score.shape[0])}")


def describe_load_failure(exc: BaseException, path: Path) -> str:
    """What is wrong with a file torch.load(weights_only=True) refused, told apart by its first bytes.

    PyTorch's own message says "Weights only load failed" for random bytes as much as for
    a pickle that calls ``os.system``; a user needs to know which of the two it is.
    """
    import re

    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        magic = b""
    text = str(exc)
    is_zip, is_pickle = magic.startswith(b"PK"), magic[:1] == b"\x80"
    if not (is_zip or is_pickle):
        return ("it is not a PyTorch file (neither the zip archive of torch.save nor a pickle): "
                "it is corrupt or another format; give the .pt written by fcn-edge train or torch.save")
    refused = "Weights only load failed" in text or "weights_only" in text
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if refused and found:
        return (f"it refers to {found.group(1)}, which is code rather than weights; such files are refused "
                "for safety (nothing from it was run); load only checkpoints from people you trust")
    if is_zip and not refused:
        return ("it is truncated or corrupt (the zip archive of torch.save is incomplete); copy it again or "
                "use another checkpoint")
    if refused:
        return ("it holds pickled objects other than tensors and plain data (or is corrupt), which are refused "
                "for safety (nothing from it was run)")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0][:200] if lines else type(exc).__name__) + "; it is truncated or corrupt"


def _summarise_load_error(exc: RuntimeError) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[1:3])[:300] if len(lines) > 1 else (lines[0][:300] if lines else "mismatch")
