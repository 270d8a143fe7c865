"""``fcn-edge info FILE``: what an artifact says about itself.

Every artifact describes itself (checkpoint: ModelInfo + training facts; ONNX:
``fcn_edge.*`` metadata_props; engine: its JSON sidecar).  ``info`` prints that
description without running the model: which classes, which preprocessing, which
geometry and size, which precision, built with what, from which source.  The ONNX and
engine paths read headers only (no weights, no torch, no TensorRT).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fcn_edge.errors import ArtifactError


def describe_artifact(path: str | Path) -> dict[str, Any]:
    """A JSON-able description of a checkpoint, ONNX model or engine (by suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        from fcn_edge.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        training = dict(ckpt.training or {})
        parameters = sum(int(v.numel()) for v in ckpt.state_dict.values())
        return {"kind": "checkpoint", "file": str(path), "model": ckpt.info.to_dict(), "parameters": parameters,
                "training": {k: training[k] for k in ("iteration", "best", "metrics", "init", "device", "world_size",
                                                      "fcn_edge_version", "source") if k in training},
                "resumable": ckpt.resume is not None}
    if suffix == ".onnx":
        from fcn_edge.artifacts.onnx_metadata import read_onnx_header, read_onnx_metadata

        header = read_onnx_header(path)
        info, facts = read_onnx_metadata(path)
        return {"kind": "onnx", "file": str(path), "bytes": path.stat().st_size, "ir_version": header.ir_version,
                "opsets": header.opsets, "producer": f"{header.producer_name} {header.producer_version}".strip(),
                "inputs": [vars(t) for t in header.inputs], "outputs": [vars(t) for t in header.outputs],
                "model": info.to_dict(), "export": facts.to_dict() if hasattr(facts, "to_dict") else vars(facts)}
    if suffix in (".engine", ".plan", ".trt"):
        from fcn_edge.artifacts.sidecar import read_sidecar, sidecar_path_for

        if not path.is_file():
            raise ArtifactError(f"engine {path} does not exist")
        sidecar_file = sidecar_path_for(path)
        if not sidecar_file.is_file():
            raise ArtifactError(f"engine {path} has no sidecar {sidecar_file.name}: it was not built by fcn-edge "
                                "build-engine, so it cannot say what it is")
        sidecar = read_sidecar(sidecar_file)
        return {"kind": "engine", "file": str(path), "summary": sidecar.describe(), **sidecar.data}
    raise ArtifactError(f"{path}: fcn-edge describes .pt/.pth checkpoints, .onnx models and .engine/.plan files")


def format_description(data: dict[str, Any]) -> str:
    model = data.get("model") or {}
    pre = model.get("preprocessing") or {}
    lines = [f"{data['file']}: {data['kind']}"]
    if model:
        size = model.get("input_size")
        lines.append(f"  model       {model.get('arch')} ({model.get('geometry')} geometry, width {model.get('width')}), "
                     f"{model.get('num_classes')} classes" + (f", deploy size {size[0]}x{size[1]}" if size else ""))
        lines.append(f"  classes     {', '.join(model.get('class_names', []))}")
        if pre:
            lines.append(f"  preprocess  frames {pre.get('input_channel_order')} -> model {pre.get('model_channel_order')}, "
                         f"(x * {pre.get('scale'):g} - mean {pre.get('mean')}) / std {pre.get('std')}")
    if data["kind"] == "checkpoint":
        lines.append(f"  parameters  {data['parameters']:,}; resumable: {'yes' if data['resumable'] else 'no'}")
        best = (data.get("training") or {}).get("best")
        if best:
            lines.append(f"  training    best val mean IU {best.get('mean_iu')} at iteration {best.get('iteration')}")
    elif data["kind"] == "onnx":
        export = data.get("export") or {}
        lines.append(f"  onnx        IR {data['ir_version']}, opsets {data['opsets']}, {data['bytes'] / 1e6:.1f} MB, "
                     f"precision {export.get('precision')}, io {export.get('io')}")
        for t in data["inputs"]:
            lines.append(f"  input       {t['name']} {t['dtype']} {t['shape']}")
        for t in data["outputs"]:
            lines.append(f"  output      {t['name']} {t['dtype']} {t['shape']}")
        if export.get("dynamic"):
            lines.append(f"  dynamic     {export['dynamic']}")
        lines.append(f"  source      {export.get('source_name')} (sha256 {str(export.get('source_sha256'))[:16]}...)")
        if export.get("calibration"):
            lines.extend(int8_lines(export["calibration"].get("keep_float"), export["calibration"].get("keep_float_searched"),
                                    export["calibration"].get("accuracy"), export["calibration"].get("budget"), None))
    else:
        lines.append(f"  engine      {data['summary']}")
        for direction in ("inputs", "outputs"):
            for t in data["io"][direction]:
                lines.append(f"  {direction[:-1]:<11} {t['name']} {t['dtype']} {t['shape']}")
        lines.append(f"  source      {data['source_onnx'].get('name')} (sha256 {str(data['source_onnx'].get('sha256'))[:16]}...)")
        int8 = data.get("int8")
        if int8:
            lines.extend(int8_lines(int8.get("keep_float"), int8.get("keep_float_searched"), int8.get("onnx_accuracy"),
                                    int8.get("budget"), int8.get("engine_accuracy")))
    return "\n".join(lines)


def int8_lines(keep_float: dict | None, searched: list | None, onnx_accuracy: dict | None, budget: dict | None,
               engine_accuracy: dict | None) -> list[str]:
    """What an INT8 artifact says about its float layers and accuracy (calibrate's facts, build-engine --verify)."""
    layers = sorted({layer for group in (keep_float or {}).values() for layer in group})
    lines = [f"  keep float  {', '.join(layers) or 'none'}"
             + (f" (the budget search added {', '.join(searched)})" if searched else "")]
    if budget:
        wanted = [f"mean IU drop <= {budget['max_drop']:g} pt" if budget.get("max_drop") is not None else "",
                  f"agreement >= {budget['min_agreement']:g}%" if budget.get("min_agreement") is not None else ""]
        lines.append(f"  budget      {' and '.join(w for w in wanted if w)}")
    for label, figures in (("int8 onnx", onnx_accuracy), ("engine", engine_accuracy)):
        if figures:
            lines.append(f"  {label:<11} {_accuracy_text(figures)}")
    return lines


def _accuracy_text(figures: dict) -> str:
    text = f"agreement with FP32 {100 * figures['agreement']:.2f}%"
    if figures.get("mean_iu_drop") is not None:
        text += (f", mean IU {100 * figures['mean_iu_fp32']:.2f} -> {100 * figures['mean_iu_int8']:.2f} "
                 f"(drop {figures['mean_iu_drop']:.2f} pt)")
    return text + f" on {figures.get('images')} {figures.get('kind')} images ({figures.get('measured_with', '?')})"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="what a checkpoint, ONNX model or engine says about itself",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help=".pt/.pth, .onnx or .engine/.plan")
    parser.add_argument("--json", action="store_true", help="print the full description as JSON")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    described = [describe_artifact(f) for f in args.files]
    if args.json:
        print(json.dumps(described if len(described) > 1 else described[0], indent=2, default=str))
    else:
        print("\n\n".join(format_description(d) for d in described))
    return 0
