#!/usr/bin/env python3
"""Recorded data through the runner: bag-to-bag vs video-to-video FPS, and the Foxglove sink's cost per frame.

The same model (FCN-8s aligned, width 1/4, 21 classes, 128x160 input, random weights:
speed does not depend on them) on ONNX Runtime CPU, the same frames (240x320 BGR,
``--frames`` of them) stored four ways:

* ``video -> video``: an MJPG .avi in, an MJPG .avi of the overlay out (``--sink out.avi``);
* ``bag(raw) -> bag``: a rosbag2 MCAP of sensor_msgs/Image bgr8 in, ``--sink out.mcap``
  (class_mask only, and with every optional topic);
* ``bag(jpeg) -> bag``: the same with sensor_msgs/CompressedImage JPEG in (decoding
  comparable to the video's).

Every frame is processed (file policy); FPS = frames / wall time of the whole run (open,
warm-up, finalising the output included), median of ``--repeats`` rounds that
interleave every configuration; ``host_ms_p50`` sums the p50s of every stage but
inference (capture/decode, preprocess, postprocess, render + sink writes), the part the
input and output formats change.  The Foxglove rows run the raw bag into ``--sink foxglove`` on 127.0.0.1
with no client (the SDK says nobody listens: nothing is drawn or encoded) and with one
subscribed WebSocket client (every image JPEG/PNG-encoded and sent); the cost per frame
is the runner's ``render`` stage (drawing + every sink's write), p50, minus the same
stage with ``--sink none``.

Usage::

    flock /tmp/fcn-edge-bench.lock python benchmarks/bag_throughput.py [--frames 120] [--threads 2] [--repeats 2]

Writes benchmarks/results/bag_throughput.json (with the machine description).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._machine import write_result  # noqa: E402
from benchmarks._models import export_random_models, fcn8s_info  # noqa: E402

FRAME_HW = (240, 320)
MODEL_HW = (128, 160)


def make_inputs(folder: Path, count: int) -> dict[str, Path]:
    """The same frames as an MJPG video, a raw-Image MCAP bag and a JPEG CompressedImage MCAP bag."""
    import cv2

    from tests.stream.bagtools import make_frames, write_rosbags

    frames = make_frames(count, size=FRAME_HW)
    video = folder / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (FRAME_HW[1], FRAME_HW[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    raw, jpeg = folder / "raw_bag", folder / "jpeg_bag"
    write_rosbags(raw, frames, storage="mcap", kind="raw")
    write_rosbags(jpeg, frames, storage="mcap", kind="compressed")
    return {"video": video, "bag_raw": raw, "bag_jpeg": jpeg}


def one_run(model: Path, source: str, sinks: list, threads: int) -> dict:
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream import RunConfig, StreamRunner

    with open_runner(model, intra_op_threads=threads, allow_spinning=False) as runner:
        stream = StreamRunner(runner, source, config=RunConfig(warmup=2), sinks=sinks)
        t0 = time.perf_counter()
        stats = stream.run()
        wall = time.perf_counter() - t0
    data = stats.to_dict()
    lat = data["latency_ms"]
    return {"frames": stats.frames_processed, "wall_s": round(wall, 3),
            "fps": round(stats.frames_processed / wall, 2),
            "render_ms": {k: lat.get("render", {}).get(k) for k in ("p50", "mean")},
            "inference_ms_p50": lat["inference"].get("p50"), "capture_ms_p50": lat["capture"].get("p50"),
            # everything but inference: reading/decoding, resizing, mapping back, drawing and writing
            "host_ms_p50": round(sum(lat.get(k, {}).get("p50") or 0.0
                                     for k in ("capture", "preprocess", "postprocess", "render")), 3)}


def median(runs: list[dict]) -> dict:
    chosen = dict(sorted(runs, key=lambda r: r["fps"])[len(runs) // 2])
    chosen["fps_all_repeats"] = [r["fps"] for r in runs]
    return chosen


class Subscriber:
    """One Foxglove WebSocket client subscribed to every channel (counts the messages it gets)."""

    def __init__(self, port: int) -> None:
        self.port, self.received, self.ready = port, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(f"ws://127.0.0.1:{self.port}", subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"]) as ws:
                while True:
                    message = ws.recv()
                    if isinstance(message, str):
                        body = json.loads(message)
                        if body.get("op") == "advertise":
                            subs = [{"id": i + 1, "channelId": c["id"]} for i, c in enumerate(body["channels"])]
                            ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
                            self.ready.set()
                    else:
                        self.received += 1
        except Exception:  # noqa: BLE001 - the server stopping ends the client
            self.ready.set()


def foxglove_run(model: Path, source: str, threads: int, client: bool) -> dict:
    from fcn_edge.stream.foxglove import FoxgloveSink

    sink = FoxgloveSink("127.0.0.1", 0)
    sink.open()
    subscriber = None
    if client:
        subscriber = Subscriber(sink.port)
        subscriber.ready.wait(10)
        deadline = time.monotonic() + 10
        while not all(c.has_sinks() for c in sink._channels.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
    result = one_run(model, source, [sink], threads)
    if subscriber is not None:
        subscriber.thread.join(5)
        result["client_messages"] = subscriber.received
    return result


RESULTS_TITLE = "Recorded robot data: bag-to-bag vs video-to-video, Foxglove sink cost"


def results_markdown(data: dict) -> list[str]:
    """The RESULTS.md block (benchmarks/update_results.py)."""
    model = data.get("model") or {}
    inference = [r["inference_ms_p50"] for r in data.get("throughput") or [] if r.get("inference_ms_p50")]
    spread = f"{min(inference):.1f}-{max(inference):.1f}" if inference else "-"
    lines = [f"FCN-8s width {model.get('width')}, {model.get('classes')} classes, "
             f"{'x'.join(map(str, model.get('input_hw') or []))} input, ONNX Runtime CPU "
             f"({data.get('threads')} threads); {data.get('frames')} frames of "
             f"{'x'.join(map(str, data.get('frame_hw') or []))}, every frame processed; median of "
             f"{data.get('repeats')} runs (the load average is in the machine line above).", "",
             f"FPS follows the inference time (its p50 ranged {spread} ms across the rows); the host column (every stage but inference, p50 per frame) is the comparison of the "
             "formats.", "",
             "| input -> output | FPS | inference p50 ms | host p50 ms (all but inference) | capture p50 ms | "
             "render+sinks p50 ms |",
             "|---|---|---|---|---|---|"]
    for row in data.get("throughput") or []:
        lines.append(f"| {row['name']} | {row['fps']} | {row['inference_ms_p50']} | {row.get('host_ms_p50', '-')} | "
                     f"{row['capture_ms_p50']} | {row['render_ms']['p50']} |")
    fox = data.get("foxglove") or {}
    if fox:
        lines += ["", "Foxglove sink (raw bag in), cost per frame = render+sinks p50 minus `--sink none`'s:", "",
                  "| sink | FPS | render+sinks p50 ms | cost per frame ms |", "|---|---|---|---|"]
        for row in fox.get("rows") or []:
            lines.append(f"| {row['name']} | {row['fps']} | {row['render_ms']['p50']} | {row.get('cost_ms', '-')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from fcn_edge.stream.bagsink import BagSink
    from fcn_edge.stream.sinks import NullSink, VideoFileSink

    info = fcn8s_info(0.25, MODEL_HW, 21)
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-bag-") as tmp:
        folder = Path(tmp)
        model = folder / "model.onnx"
        export_random_models(info, [(model, {"size": MODEL_HW, "outputs": ["labels", "confidence"]})])
        inputs = make_inputs(folder, args.frames)
        plans = [
            ("video -> video (.avi MJPG, overlay)", str(inputs["video"]),
             lambda: [VideoFileSink(folder / "out.avi")]),
            ("bag raw bgr8 -> bag (class_mask)", f"bag:{inputs['bag_raw']}",
             lambda: [BagSink(folder / "out.mcap")]),
            ("bag JPEG -> bag (class_mask)", f"bag:{inputs['bag_jpeg']}",
             lambda: [BagSink(folder / "out.mcap")]),
            ("bag raw bgr8 -> bag (all topics)", f"bag:{inputs['bag_raw']}",
             lambda: [BagSink(folder / "out.mcap", topics=("overlay", "confidence", "class_info", "image"))]),
            ("bag raw bgr8 -> none", f"bag:{inputs['bag_raw']}", lambda: [NullSink()]),
            ("video -> none", str(inputs["video"]), lambda: [NullSink()]),
        ]
        # rounds interleave every configuration, so a burst of load from elsewhere hits all of them
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in plans}
        source = f"bag:{inputs['bag_raw']}"
        fox = {"none": [], "foxglove, no client": [], "foxglove, 1 subscribed client": []}
        for _ in range(args.repeats):
            for name, src, sinks in plans:
                runs[name].append(one_run(model, src, sinks(), args.threads))
            fox["none"].append(one_run(model, source, [NullSink()], args.threads))
            fox["foxglove, no client"].append(foxglove_run(model, source, args.threads, False))
            fox["foxglove, 1 subscribed client"].append(foxglove_run(model, source, args.threads, True))
        throughput = [{"name": name, **median(r)} for name, r in runs.items()]
        for row in throughput:
            print(f"{row['name']}: {row['fps']} FPS, host {row['host_ms_p50']} ms/frame", flush=True)
        base = median(fox["none"])
        rows = []
        for name, r in fox.items():
            row = median(r)
            row["cost_ms"] = round(row["render_ms"]["p50"] - base["render_ms"]["p50"], 3)
            rows.append({"name": name, **row})
            print(f"{name}: {row['fps']} FPS, +{row['cost_ms']} ms/frame", flush=True)
    path = write_result("bag_throughput", {
        "model": {"arch": "fcn8s", "width": 0.25, "classes": 21, "input_hw": list(MODEL_HW)},
        "frames": args.frames, "frame_hw": list(FRAME_HW), "threads": args.threads, "repeats": args.repeats,
        "throughput": throughput, "foxglove": {"rows": rows}})
    print(path)


if __name__ == "__main__":
    main()
