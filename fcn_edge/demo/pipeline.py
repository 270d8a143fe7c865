"""``fcn-edge demo``: the whole pipeline on data it makes itself, in one command.

Without a dataset, weights, a camera or a GPU, a newcomer sees every stage work and
what each deployment step costs: synthetic data -> a tiny FCN-8s trained on the CPU ->
evaluation -> ONNX export with in-graph pre/post-processing -> INT8 calibration ->
TensorRT engines (only where TensorRT and a GPU exist; otherwise the report says why
not) -> a synthetic video through the streaming runner on every backend -> a report.

Each step writes its artifact into the work folder and is skipped on the next run when
the artifact is there (``--fresh`` starts over), so re-running only redoes what is
missing.  Every step goes through the same public API the CLI commands use; the demo
has no private shortcuts.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fcn_edge import __version__
from fcn_edge.errors import FcnEdgeError, MissingDependencyError

log = logging.getLogger(__name__)

VIDEO_FRAMES = 150
VIDEO_SIZE = (240, 320)
CALIB_IMAGES = 64
OVERLAY_COUNT = 3


@dataclass
class DemoConfig:
    """Where and how much.  Defaults finish in a few minutes on a 2-core CPU."""

    workdir: Path = Path("demo_out")
    fresh: bool = False
    device: str = "cpu"                 # PyTorch device for training and the .pt backend
    threads: int | None = None          # torch / ONNX Runtime threads (None: library default)
    iterations: int | None = None       # training iterations (None: the demo preset's)
    video_frames: int = VIDEO_FRAMES
    engines: bool = True                # try TensorRT engines when TensorRT and a GPU exist
    show_progress: bool = True


@dataclass
class Step:
    name: str
    seconds: float
    reused: bool


@dataclass
class DemoState:
    """What the steps produced, collected into the report's summary."""

    config: DemoConfig
    steps: list[Step] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.config.workdir / name


def run_demo(config: DemoConfig, emit: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the demo in ``config.workdir``; returns the report summary."""
    workdir = Path(config.workdir)
    if config.fresh and workdir.exists():
        _remove_demo_folder(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config.workdir = workdir
    state = DemoState(config)
    started_empty = not any(workdir.iterdir())
    emit(f"fcn-edge demo in {workdir.resolve()} "
         f"({'starting from nothing' if started_empty else 'reusing what is already built; --fresh starts over'})")
    steps: list[tuple[str, Callable[[DemoState], bool]]] = [
        ("synthetic data", step_data),
        ("train FCN-8s", step_train),
        ("export ONNX", step_export),
        ("calibrate INT8", step_calibrate),
        ("TensorRT engines", step_engines),
        ("evaluate", step_evaluate),
        ("stream video", step_stream),
        ("overlays", step_overlays),
    ]
    total = time.perf_counter()
    for index, (name, function) in enumerate(steps, start=1):
        emit(f"[{index}/{len(steps)}] {name}")
        start = time.perf_counter()
        skipped_before = len(state.skipped)
        reused = function(state)
        seconds = time.perf_counter() - start
        state.steps.append(Step(name, round(seconds, 2), reused))
        for skipped in state.skipped[skipped_before:]:  # said now, not only in the summary
            emit(f"      skipped {skipped['name']}: {skipped['reason']}")
        emit(f"      {'reused' if reused else 'done'} in {seconds:.1f} s")
    summary = build_summary(state, time.perf_counter() - total)
    from fcn_edge.demo.report import write_report

    paths = write_report(summary, workdir / "report")
    emit(format_table(summary))
    emit(f"report: {paths['markdown']}  ({paths['html'].name}, summary.json beside it)")
    return summary


# ----------------------------------------------------------------------------- steps
def step_data(state: DemoState) -> bool:
    """Synthetic dataset, calibration images (a separate stream) and a video."""
    from fcn_edge.data.synth import (SynthConfig, write_calibration_set, write_synthetic_dataset,
                                     write_synthetic_video)

    data = state.path("data")
    calib = state.path("calib")
    video = state.path("video.mp4")
    state.paths.update(data=data, calib=calib, video=video)
    reused = (data / "dataset.json").is_file() and calib.is_dir() and video.is_file()
    synth = SynthConfig()
    if not (data / "dataset.json").is_file():
        write_synthetic_dataset(data, synth, overwrite=True, show_progress=state.config.show_progress)
    if not calib.is_dir():
        write_calibration_set(calib, CALIB_IMAGES, size=synth.size, num_classes=synth.num_classes, seed=synth.seed + 1)
    if not video.is_file():
        write_synthetic_video(video, frames=state.config.video_frames, size=VIDEO_SIZE, fps=15,
                              seed=synth.seed + 2, num_classes=synth.num_classes)
    description = json.loads((data / "dataset.json").read_text())
    state.facts["dataset"] = {
        "path": str(data), "train": description.get("counts", {}).get("train", synth.train),
        "val": description.get("counts", {}).get("val", synth.val),
        "size": "x".join(str(v) for v in synth.size), "num_classes": synth.num_classes,
        "class_names": description.get("class_names") or [],
    }
    return reused


def step_train(state: DemoState) -> bool:
    from fcn_edge.train import synthetic_demo_config

    out = state.path("train")
    best = out / "best.pt"
    timing = out / "demo_training.json"
    state.paths["checkpoint"] = best
    reused = best.is_file() and timing.is_file()  # timing is written when training finished
    if not reused:
        from fcn_edge.train import TrainConfig, train

        overrides: dict[str, Any] = {"device": state.config.device, "overwrite": True}
        if state.config.threads is not None:
            overrides["threads"] = state.config.threads
        last = out / "last.pt"
        if last.is_file():  # an interrupted demo: continue where it stopped
            log.info("continuing the interrupted training from %s", last)
            config = TrainConfig(resume=str(last), **overrides)
        else:
            if state.config.iterations is not None:
                overrides["iterations"] = state.config.iterations
            config = synthetic_demo_config(str(state.paths["data"]), str(out), **overrides)
        start = time.perf_counter()
        result = train(config)
        if result.interrupted:
            log.warning("training stopped; run the same fcn-edge demo command again to continue from %s", last)
            raise KeyboardInterrupt
        from fcn_edge.fileio import atomic_write_text

        atomic_write_text(timing, json.dumps({"seconds": round(time.perf_counter() - start, 1)}) + "\n")
    from fcn_edge.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(best)
    training = checkpoint.training or {}
    parameters = sum(int(np.prod(v.shape)) for v in checkpoint.state_dict.values())
    state.facts["training"] = {
        "arch": checkpoint.info.arch, "width": checkpoint.info.width, "parameters": parameters,
        "iterations": (training.get("config") or {}).get("iterations") or training.get("iteration"),
        "best_iteration": (training.get("best") or {}).get("iteration"),
        "best_val_mean_iu": (training.get("best") or {}).get("mean_iu"),
        "seconds": json.loads(timing.read_text()).get("seconds") if timing.is_file() else None,
        "device": training.get("device", state.config.device),
    }
    return reused


def step_export(state: DemoState) -> bool:
    from fcn_edge.export import ExportConfig, export_onnx

    onnx = state.path("export") / "fcn8s.onnx"
    state.paths["onnx"] = onnx
    if onnx.is_file():
        return True
    onnx.parent.mkdir(parents=True, exist_ok=True)
    report = export_onnx(state.paths["checkpoint"], onnx, ExportConfig(outputs=("labels", "confidence")))
    for line in report.lines():
        log.info("%s", line)
    return False


def step_calibrate(state: DemoState) -> bool:
    """Two INT8 models from the same calibration images.

    ``fcn8s.int8.onnx`` places Q/DQ the way TensorRT wants them (what INT8 engines are
    built from); ONNX Runtime on a CPU can only emulate that layout, so it runs slower
    than FP32 there.  ``fcn8s.int8-cpu.onnx`` places them for ONNX Runtime's integer
    kernels: the INT8 a CPU user would deploy.
    """
    from fcn_edge.calib import calibrate_onnx
    from fcn_edge.fileio import atomic_write_text

    export = state.path("export")
    state.paths["int8"] = export / "fcn8s.int8.onnx"
    state.paths["int8_cpu"] = export / "fcn8s.int8-cpu.onnx"
    summary_path = export / "fcn8s.int8.calibration.json"
    if all(state.paths[k].is_file() for k in ("int8", "int8_cpu")) and summary_path.is_file():
        state.facts["calibration"] = json.loads(summary_path.read_text())
        return True
    facts = {}
    for key, placement in (("int8", "tensorrt"), ("int8_cpu", "onnxruntime")):
        report = calibrate_onnx(state.paths["onnx"], state.paths["calib"], state.paths[key], val=str(state.paths["data"]),
                                val_split="val", placement=placement, show_progress=state.config.show_progress,
                                sensitivity_budget_s=60.0, sensitivity=(placement == "tensorrt") and "auto")
        accuracy = report.accuracy
        facts[placement] = {
            "output": state.paths[key].name, "method": report.method, "target": report.target,
            "images": report.images, "keep_float": report.keep_float, "warnings": list(report.warnings),
            "mean_iu_drop_points": getattr(accuracy, "mean_iu_drop", None),
            "agreement": getattr(accuracy, "agreement", None),
        }
    atomic_write_text(summary_path, json.dumps(facts, indent=2, default=str) + "\n")
    state.facts["calibration"] = facts
    return False


def step_engines(state: DemoState) -> bool:
    """FP16 and INT8 engines where TensorRT and a GPU are present; otherwise say why not."""
    names = {"fp16": "TensorRT FP16", "int8": "TensorRT INT8"}
    if not state.config.engines:
        for name in names.values():
            state.skipped.append({"name": name, "reason": "engines turned off (--no-engines)"})
        return False
    from fcn_edge.engine.environment import detect_build_environment

    try:
        detect_build_environment()
    except MissingDependencyError as exc:
        for name in names.values():
            state.skipped.append({"name": name, "reason": str(exc)})
        return False
    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.options import BuildOptions

    reused = True
    for precision, name in names.items():
        source = state.paths["int8"] if precision == "int8" else state.paths["onnx"]
        engine = state.path("export") / f"fcn8s.{precision}.engine"
        state.paths[f"engine_{precision}"] = engine
        if engine.is_file():
            continue
        reused = False
        try:
            run_build(BuildRequest(onnx=source, options=BuildOptions(precision=precision), output=engine),
                      emit=log.info)
        except FcnEdgeError as exc:
            state.paths.pop(f"engine_{precision}", None)
            state.skipped.append({"name": name, "reason": f"build failed: {exc}"})
    return reused


def _models(state: DemoState) -> list[tuple[str, str, str, Path, dict[str, Any]]]:
    """(name, backend, precision, path, runner options) of every variant that exists."""
    torch_options: dict[str, Any] = {"device": state.config.device}
    ort_options: dict[str, Any] = {}
    if state.config.threads is not None:
        torch_options["threads"] = ort_options["threads"] = state.config.threads
    models = [("PyTorch FP32", "torch", "fp32", state.paths["checkpoint"], torch_options),
              ("ONNX FP32", "onnxruntime", "fp32", state.paths["onnx"], ort_options),
              ("ONNX INT8", "onnxruntime", "int8", state.paths["int8"], ort_options),
              ("ONNX INT8 (CPU layout)", "onnxruntime", "int8", state.paths["int8_cpu"], ort_options)]
    for precision in ("fp16", "int8"):
        engine = state.paths.get(f"engine_{precision}")
        if engine is not None and engine.is_file():
            models.append((f"TensorRT {precision.upper()}", "tensorrt", precision, engine, {}))
    return models


def step_evaluate(state: DemoState) -> bool:
    """The four metrics of every variant on the val split, with agreement against PyTorch FP32."""
    from fcn_edge.eval import EvalConfig, evaluate
    from fcn_edge.eval.predict import open_predictor

    models = _models(state)
    predictors = []
    try:
        for name, _backend, _precision, path, options in models:
            predictor = open_predictor(path, **options)
            predictor.name = name
            predictors.append(predictor)
        report = evaluate(predictors, state.paths["data"],
                          EvalConfig(split="val", progress=state.config.show_progress))
    finally:
        for predictor in predictors:
            predictor.close()
    by_name = {result.name: result for result in report.models}
    for name, backend, precision, path, _ in models:
        result = by_name[name]
        state.variants.append({
            "name": name, "backend": backend, "precision": precision, "model": str(path),
            "file_bytes": path.stat().st_size,
            "metrics": {k: result.scores.get(k) for k in ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu")},
            "per_class_iu": dict(zip(report.class_names, result.scores.get("iu", []))),
            "agreement": 1.0 if result.agreement is None else result.agreement,
            "eval_ms_per_image": result.ms_per_image,
        })
    return False


def step_stream(state: DemoState) -> bool:
    """The synthetic video through the streaming runner with each variant, every frame, batch 1."""
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream.runner import RunConfig, StreamRunner
    from fcn_edge.stream.sinks import VideoFileSink

    from fcn_edge.progress import progress

    by_name = {v["name"]: v for v in state.variants}
    for name, _backend, _precision, path, options in progress(_models(state), desc="stream video", unit="model",
                                                              disable=not state.config.show_progress):
        sinks = []
        if name == "ONNX INT8":  # one overlay video people can watch
            out = state.path("report") / "stream_onnx_int8.mp4"
            out.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(VideoFileSink(out))
            state.paths["stream_video"] = out
        with open_runner(path, **options) as runner:
            stats = StreamRunner(runner, str(state.paths["video"]), sinks=sinks,
                                 config=RunConfig(every_frame=True)).run()
        data = stats.to_dict()
        inference = data["latency_ms"].get("inference", {})
        by_name[name]["latency_ms"] = {"p50": inference.get("p50"), "p95": inference.get("p95")}
        by_name[name]["fps"] = data["throughput_fps"]
        by_name[name]["stream"] = {"frames": data["frames"], "latency_ms": data["latency_ms"],
                                   "throughput_fps": data["throughput_fps"]}
    return False


def step_overlays(state: DemoState) -> bool:
    """A few val images: input | ground truth | PyTorch FP32 | ONNX INT8, as PNGs."""
    from fcn_edge.data import open_dataset, resize_for_network
    from fcn_edge.data.imageio import write_image
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream.visualize import ViewOptions, Visualizer

    dataset = open_dataset(state.paths["data"], split="val")
    folder = state.path("report") / "overlays"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    with open_runner(state.paths["checkpoint"], device=state.config.device) as fp32, \
            open_runner(state.paths["int8"]) as int8:
        size = fp32.info.input_size or int8.io.size
        visual = Visualizer(int8.info, ViewOptions())
        picks = np.linspace(0, len(dataset) - 1, OVERLAY_COUNT).astype(int)
        for index in picks:
            sample = dataset.load(int(index))
            frame = resize_for_network(sample.image, size)
            from fcn_edge.data import resize_labels

            truth = resize_labels(np.where(sample.mask == 255, 0, sample.mask), size)
            row = [frame, visual.overlay(frame, truth)]
            for runner in (fp32, int8):
                row.append(visual.overlay(frame, runner.infer(frame[None]).labels[0]))
            name = f"overlays/val_{int(index):03d}.png"
            write_image(state.path("report") / name, np.concatenate(row, axis=1))
            names.append(name)
    state.facts["overlays"] = names
    return False


# ----------------------------------------------------------------------------- report
def build_summary(state: DemoState, seconds: float) -> dict[str, Any]:
    try:
        from benchmarks._machine import machine_info  # type: ignore[import-not-found]
        machine = machine_info()
    except Exception:  # noqa: BLE001 - the package may be installed without the repo's benchmarks/
        import os
        import platform

        machine = {"platform": platform.platform(), "python": platform.python_version(), "logical_cpus": os.cpu_count()}
    return {
        "fcn_edge_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "workdir": str(state.config.workdir.resolve()),
        "total_seconds": round(seconds, 1),
        "machine": machine,
        "dataset": state.facts.get("dataset"),
        "training": state.facts.get("training"),
        "calibration": state.facts.get("calibration"),
        "variants": state.variants,
        "skipped": state.skipped,
        "overlays": state.facts.get("overlays", []),
        "stream_video": str(state.paths["stream_video"].relative_to(state.path("report")))
        if "stream_video" in state.paths else None,
        "steps": [{"name": s.name, "seconds": s.seconds, "reused": s.reused} for s in state.steps],
    }


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'variant':<24}{'mean IU':>9}{'pix acc':>9}{'agree':>9}{'p50 ms':>9}{'p95 ms':>9}{'FPS':>8}"]
    for v in summary["variants"]:
        m = v.get("metrics") or {}
        lat = v.get("latency_ms") or {}

        def f(x, scale=1.0, digits=2):
            return "n/a" if x is None else f"{x * scale:.{digits}f}"

        lines.append(f"{v['name']:<24}{f(m.get('mean_iu'), 100):>9}{f(m.get('pixel_accuracy'), 100):>9}"
                     f"{f(v.get('agreement'), 100):>9}{f(lat.get('p50')):>9}{f(lat.get('p95')):>9}"
                     f"{f(v.get('fps'), 1, 1):>8}")
    for s in summary["skipped"]:
        lines.append(f"{s['name']}: not run: {s['reason']}")
    return "\n".join(lines)


def _remove_demo_folder(workdir: Path) -> None:
    """--fresh: remove a previous demo folder, but never a folder that is not one."""
    known = {"data", "calib", "video.mp4", "train", "export", "report"}
    entries = {p.name for p in workdir.iterdir()}
    if entries - known:
        raise FcnEdgeError(f"--fresh would delete {workdir}, which holds files the demo did not make "
                           f"({', '.join(sorted(entries - known)[:5])}); pick another --workdir or clean it yourself")
    shutil.rmtree(workdir)
