"""``fcn-edge ros2`` against real rclpy (Jazzy wheels), nodes in subprocesses inside a network namespace.

One scenario run (tests/ros2/scenario.py, about 15 s) feeds every test here; see
conftest.py for the two network belts.  Expected values are computed on this side with
the local runner (:class:`fcn_edge.Segmenter`, the same resize as ``fcn-edge run``).
"""

from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.ros2.conversions import confidence_to_mono8
from tests.ros2.frames import FRAME_SIZE, sent_frames

OUTPUTS = ("class_mask", "color_mask", "overlay", "confidence")


@pytest.fixture(scope="module")
def local(tiny_onnx):
    """The local runner's results for the frames the scenario sent."""
    from fcn_edge import Segmenter

    with Segmenter.open(str(tiny_onnx)) as seg:
        results = [seg.segment(frame) for frame in sent_frames()]
        yield seg, results


@pytest.fixture(scope="module")
def ordered(ros_scenario):
    return np.load(ros_scenario["_dir"] / "ordered.npz")


def test_every_frame_answered_with_its_header(ros_scenario):
    assert ros_scenario["nodes_subscribed"] and ros_scenario["warmup"], "the nodes never answered"
    answered = ros_scenario["ordered"]["answered"]
    stamps = ros_scenario["ordered"]["stamps"]
    assert len(set(stamps)) == len(stamps) == len(sent_frames())
    for name in OUTPUTS:
        got = sorted(a["index"] for a in answered if a["output"] == name)
        assert got == list(range(len(stamps))), (name, got)
    assert {a["frame_id"] for a in answered} == {"camera_optical"}
    assert all(a["stamp"] == stamps[a["index"]] for a in answered)


def test_class_mask_equals_local_runner(ros_scenario, ordered, local):
    seg, results = local
    for i, result in enumerate(results):
        mask = ordered[f"class_mask_{i}"]
        assert mask.dtype == np.uint8 and mask.shape == FRAME_SIZE
        np.testing.assert_array_equal(mask, result.labels)
    assert len({ordered[f"class_mask_{i}"].tobytes() for i in range(len(results))}) > 1  # frames differ
    encodings = {(a["output"], a["encoding"], a["height"], a["width"]) for a in ros_scenario["ordered"]["answered"]}
    assert encodings == {("class_mask", "mono8", *FRAME_SIZE), ("color_mask", "rgb8", *FRAME_SIZE),
                         ("overlay", "bgr8", *FRAME_SIZE), ("confidence", "mono8", *FRAME_SIZE)}


def test_color_mask_overlay_confidence(ordered, local):
    seg, results = local
    frames = sent_frames()
    for i, result in enumerate(results):
        np.testing.assert_array_equal(ordered[f"color_mask_{i}"], seg.colorize(result.labels)[..., ::-1])
        np.testing.assert_array_equal(ordered[f"overlay_{i}"], seg.overlay(frames[i], result.labels))
        np.testing.assert_array_equal(ordered[f"confidence_{i}"], confidence_to_mono8(result.confidence))


def test_node_holds_no_udp_socket(ros_scenario):
    for node in ("plain", "packed", "direct"):
        udp = ros_scenario["udp"][node]
        assert udp["sockets"] >= 0 and udp["udp"] == 0, (node, udp)
    assert ros_scenario["udp"]["probe"]["udp"] == 0


def test_late_subscriber_gets_class_info(ros_scenario, tiny_onnx):
    info = ros_scenario["class_info"]
    assert info is not None, "no class_info for a subscriber that joined late"
    assert info["class_names"] == [f"class_{i}" for i in range(5)]
    assert len(info["palette"]) == 5 and info["num_classes"] == 5
    assert info["model"] == str(tiny_onnx)
    assert info["runtime"]["backend"] == "onnxruntime"
    assert info["outputs"]["fcn_edge/class_mask"] == "mono8"


def test_read_only_parameter_refused_runtime_one_accepted(ros_scenario):
    assert ros_scenario["set_model"]["successful"] is False
    assert ros_scenario["set_publish_overlay"] == {"successful": True, "reason": ""}


def test_burst_answered_by_a_few_masks_with_the_newest(ros_scenario):
    sent, answered = ros_scenario["burst"]["sent"], ros_scenario["burst"]["answered"]
    assert sent[-1] in answered, "the newest frame of the burst was not answered"
    assert 1 <= len(answered) < len(sent), len(answered)
    assert set(answered) <= set(sent) and answered == sorted(answered)


def test_diagnostics(ros_scenario):
    plain = [d for d in ros_scenario["diagnostics"] if d["name"] == "/plain/fcn_edge: segmentation"
             and d["values"].get("input") == "/plain/image"]
    assert plain, ros_scenario["diagnostics"]
    values = plain[-1]["values"]
    assert values["backend"] == "onnxruntime" and values["model"].endswith("tiny.onnx")
    assert int(values["processed"]) >= len(sent_frames()) + 1
    assert int(values["received"]) >= int(values["processed"])
    assert int(values["bad_messages"]) >= 2  # each sent until counted (a resend under load counts again)
    for key in ("fps", "dropped"):
        assert key in values
    with_latency = [d["values"] for d in plain if "inference_ms_p50" in d["values"]]
    assert with_latency, "no window with latency figures"
    assert {"inference_ms_p95", "total_ms_p99", "input_to_publish_ms_p50"} <= set(with_latency[0])


def test_only_subscribed_outputs_are_computed(ros_scenario):
    """The probe subscribes only class_mask of /packed: the node computes nothing else there."""
    packed = [d["values"] for d in ros_scenario["diagnostics"] if d["values"].get("input") == "/packed/image/compressed"]
    plain = [d["values"] for d in ros_scenario["diagnostics"] if d["values"].get("input") == "/plain/image"]
    assert packed and plain
    assert {v["outputs_active"] for v in packed} == {"class_mask"}
    assert plain[-1]["outputs_active"] == "class_mask,color_mask,overlay,confidence"


def test_bad_messages_survived_with_one_warning(ros_scenario):
    assert ros_scenario["after_bad"], "no mask for a good frame after the bad ones"
    log = ros_scenario["_logs"]["plain"]
    warnings = [line for line in log.splitlines() if "skipped a message" in line]
    assert len(warnings) == 1, log  # throttled: the second one is held back
    assert "16UC1" in warnings[0]
    assert "Traceback" not in log


def test_compressed_input(ros_scenario, local):
    seg, _ = local
    packed = np.load(ros_scenario["_dir"] / "packed.npz")
    assert sorted(packed.files) == ["0", "1"], packed.files  # png and jpeg both answered
    frame = sent_frames()[2]
    np.testing.assert_array_equal(packed["0"], seg.segment(frame).labels)  # png is lossless
    assert packed["1"].shape == FRAME_SIZE and packed["1"].dtype == np.uint8
    assert set(ros_scenario["packed_frame_ids"]) == {"packed_cam"}


def test_source_captured_by_the_node(ros_scenario, local):
    """--source: frames never cross ROS; masks carry the capture time and --frame-id, labels as the runner's."""
    import cv2

    seg, _ = local
    capture = cv2.VideoCapture(str(ros_scenario["_video"]))
    expected = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        expected.append(seg.segment(frame).labels)
    capture.release()
    masks = np.load(ros_scenario["_dir"] / "direct.npz")
    assert len(masks.files) == 3
    for name in masks.files:
        mask = masks[name]
        assert mask.shape == FRAME_SIZE
        assert any(np.array_equal(mask, labels) for labels in expected), "a mask that matches no video frame"
    for answer in ros_scenario["direct"]:
        assert answer["frame_id"] == "cam_direct"
        assert 0 < answer["received"] - answer["stamp"] < 60 * 10**9  # stamped at capture, on this clock


def test_signals_exit_zero_and_nothing_half_made(ros_scenario):
    assert ros_scenario["sigint"]["rc"] == 0 and not ros_scenario["sigint"]["killed"], ros_scenario["sigint"]
    assert ros_scenario["sigterm"]["rc"] == 0 and not ros_scenario["sigterm"]["killed"], ros_scenario["sigterm"]
    assert ros_scenario["sigint_direct"]["rc"] == 0 and not ros_scenario["sigint_direct"]["killed"]
    assert ros_scenario["outputs_half_made"] == 0
    assert "stopping (SIGINT)" in ros_scenario["_logs"]["plain"]
    assert "stopping (SIGTERM)" in ros_scenario["_logs"]["packed"]
