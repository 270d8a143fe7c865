"""The Python API: Segmenter.open / segment / stream, thread safety."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import fcn_edge
from fcn_edge.errors import FcnEdgeError
from tests.onnx_models import moving_frames, write_video


@pytest.fixture
def segmenter(tiny_onnx):
    with fcn_edge.Segmenter.open(tiny_onnx, intra_op_threads=1) as seg:
        yield seg


def test_segment_any_size_frame(segmenter, tiny_info):
    frame = moving_frames(1, (240, 320))[0]
    result = segmenter.segment(frame)
    assert result.labels.shape == (240, 320) and result.labels.dtype == np.uint8
    assert result.confidence.shape == (240, 320) and result.confidence.dtype == np.float32
    assert {"preprocess", "inference", "postprocess", "total", "backend_run"} <= set(result.timings)
    assert segmenter.class_names == tiny_info.class_names and segmenter.network_size == (64, 96)
    resized = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_LINEAR)
    direct = segmenter.runner.infer(resized[None]).labels[0]
    np.testing.assert_array_equal(cv2.resize(direct, (320, 240), interpolation=cv2.INTER_NEAREST), result.labels)
    fractions = result.class_fractions()
    assert abs(sum(fractions.values()) - 1.0) < 1e-9
    name = next(iter(fractions))
    assert result.mask(name).mean() == pytest.approx(fractions[name])
    mono = result.to_mono8()
    assert mono.dtype == np.uint8 and mono.flags.c_contiguous
    with pytest.raises(FcnEdgeError, match="unknown class"):
        result.mask("unicorn")


def test_rgb_frames_and_bad_frames(segmenter):
    frame = moving_frames(1)[0]
    a = segmenter.segment(frame)
    b = segmenter.segment(np.ascontiguousarray(frame[..., ::-1]), rgb=True)
    np.testing.assert_array_equal(a.labels, b.labels)
    with pytest.raises(FcnEdgeError, match="HxWx3 uint8"):
        segmenter.segment(np.zeros((10, 10), np.uint8))


def test_batches_are_split_to_what_the_model_takes(segmenter, tiny_onnx_dynamic):
    frames = moving_frames(5, (100, 120))
    singles = [segmenter.segment(f).labels for f in frames]
    batched = segmenter.segment_batch(frames)  # static batch 1: five calls
    assert [r.index for r in batched] == list(range(5))
    with fcn_edge.Segmenter.open(tiny_onnx_dynamic) as dynamic:
        together = dynamic.segment_batch(frames)  # one call of 5
    for single, a, b in zip(singles, batched, together):
        np.testing.assert_array_equal(single, a.labels)
        np.testing.assert_array_equal(single, b.labels)


def test_segment_is_thread_safe(segmenter):
    frames = moving_frames(12, (120, 160))
    expected = [segmenter.segment(f).labels for f in frames]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda f: segmenter.segment(f).labels, frames))
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_stream_yields_results_with_callbacks(segmenter, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 6)
    seen, events = [], []
    results = list(segmenter.stream(str(video), on_frame=seen.append, on_event=events.append,
                                    sinks=[str(tmp_path / "out.avi")]))
    assert [r.index for r in results] == list(range(6)) and seen == results
    assert results[0].frame.shape == (120, 160, 3) and results[0].source == str(video)
    assert results[0].wall_time > 0 and results[0].labels.shape == (120, 160)
    assert [e.kind for e in events][:1] == ["opened"]
    assert segmenter.last_stats.frames_processed == 6
    # the stream and direct calls agree
    np.testing.assert_array_equal(segmenter.segment(results[2].frame).labels, results[2].labels)


def test_breaking_out_of_a_stream_stops_capture(segmenter, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 4)
    before = {t.name for t in threading.enumerate()}
    for result in segmenter.stream(str(video), loop=True):
        if result.index >= 5:
            break
    assert segmenter.last_stats.stop_reason == "stopped"
    lingering = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert not {n for n in lingering if n.startswith("fcn-edge-")}, lingering


def test_segment_while_streaming_from_another_thread(segmenter, tmp_path):
    video = write_video(tmp_path / "clip.mp4", 10)
    frame = moving_frames(1)[0]
    expected = segmenter.segment(frame).labels
    errors = []

    def robot_callback():
        try:
            for _ in range(5):
                np.testing.assert_array_equal(segmenter.segment(frame).labels, expected)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=robot_callback)
    thread.start()
    assert len(list(segmenter.stream(str(video)))) == 10
    thread.join()
    assert not errors, errors


def test_drawing_helpers(segmenter):
    frame = moving_frames(1)[0]
    result = segmenter.segment(frame)
    colour = segmenter.colorize(result.labels)
    assert colour.shape == frame.shape
    lut = np.array([(b, g, r) for r, g, b in segmenter.palette], np.uint8)
    np.testing.assert_array_equal(colour, lut[result.labels])
    assert segmenter.overlay(frame, result.labels).shape == frame.shape


def test_lazy_attribute_and_errors(tmp_path):
    assert fcn_edge.Segmenter.__name__ == "Segmenter" and fcn_edge.Result.__name__ == "Result"
    with pytest.raises(AttributeError):
        fcn_edge.NotAThing  # noqa: B018
    with pytest.raises(FcnEdgeError, match="does not exist"):
        fcn_edge.Segmenter.open(tmp_path / "missing.onnx")


def test_stream_of_an_array_or_none_is_one_sentence(tiny_onnx):
    """stream() takes sources (index, path, URL); an image array used to reach pathlib as a 'file name too long'."""
    from fcn_edge.errors import FcnEdgeError

    with fcn_edge.Segmenter.open(tiny_onnx) as seg:
        for bad in (np.zeros((8, 8, 3), np.uint8), None, [0, 3.5]):
            with pytest.raises(FcnEdgeError, match=r"camera index, a path or a URL.*segment\(frame\)"):
                list(seg.stream(bad))


def test_a_source_too_long_for_a_path_is_one_sentence():
    from fcn_edge.errors import SourceError
    from fcn_edge.stream import parse_source

    with pytest.raises(SourceError, match=r"cannot be a path \(File name too long\)"):
        parse_source("x" * 5000)
