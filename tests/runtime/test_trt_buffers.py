"""The TensorRT runner's buffer logic, exercised without TensorRT or CUDA."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.runtime.base import build_result, normalise_label_array
from fcn_edge.runtime.trt_buffers import (BufferPlan, BufferRing, EngineTensor, check_input_shape,
                                          engine_io_spec, nbytes, numpy_dtype, volume)


class FakeDataType(enum.Enum):
    """Stands in for tensorrt.DataType: the code reads only ``.name``."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 7
    BF16 = 8


def test_dtype_mapping():
    assert numpy_dtype(FakeDataType.FLOAT) == np.float32
    assert numpy_dtype(FakeDataType.HALF) == np.float16
    assert numpy_dtype(FakeDataType.INT32) == np.int32
    assert numpy_dtype(FakeDataType.INT64) == np.int64
    assert numpy_dtype(FakeDataType.UINT8) == np.uint8
    assert numpy_dtype("DataType.INT8") == np.int8
    with pytest.raises(ArtifactError, match="no numpy equivalent"):
        numpy_dtype(FakeDataType.BF16)
    with pytest.raises(ArtifactError, match="unknown"):
        numpy_dtype("COMPLEX")


def test_sizes():
    assert volume((2, 64, 96, 3)) == 2 * 64 * 96 * 3
    assert nbytes((2, 64, 96), np.int64) == 2 * 64 * 96 * 8
    with pytest.raises(ValueError):
        volume((-1, 3))


def dynamic_engine(label_dtype=np.int64):
    frames = EngineTensor("frames", True, np.dtype(np.uint8), (-1, 64, 96, 3),
                          ((1, 64, 96, 3), (2, 64, 96, 3), (4, 64, 96, 3)))
    labels = EngineTensor("labels", False, np.dtype(label_dtype), (-1, 64, 96))
    confidence = EngineTensor("confidence", False, np.dtype(np.float16), (-1, 64, 96))
    return [frames, labels, confidence]


def test_plan_allocates_for_the_profile_maximum():
    tensors = dynamic_engine()
    plan = BufferPlan(tensors, {"labels": (4, 64, 96), "confidence": (4, 64, 96)})
    assert plan.sizes == {"frames": 4 * 64 * 96 * 3, "labels": 4 * 64 * 96 * 8, "confidence": 4 * 64 * 96 * 2}
    assert plan.total_bytes(2) == 2 * sum(plan.sizes.values())
    assert [t.name for t in plan.inputs] == ["frames"] and len(plan.outputs) == 2
    with pytest.raises(ArtifactError, match="unresolved"):
        BufferPlan(tensors, {"labels": (-1, 64, 96), "confidence": (4, 64, 96)})


def test_host_view_types_and_shapes_part_of_a_flat_buffer():
    plan = BufferPlan(dynamic_engine(), {"labels": (4, 64, 96), "confidence": (4, 64, 96)})
    flat = np.zeros(plan.sizes["labels"], np.uint8)
    view = plan.host_view(flat, "labels", (2, 64, 96))
    assert view.dtype == np.int64 and view.shape == (2, 64, 96)
    view[1, 5, 7] = 3
    assert np.shares_memory(view, flat)
    assert flat.view(np.int64)[64 * 96 + 5 * 96 + 7] == 3


def test_input_shapes_are_checked_against_the_profile():
    frames = dynamic_engine()[0]
    assert check_input_shape(frames, (3, 64, 96, 3)) == (3, 64, 96, 3)
    with pytest.raises(FcnEdgeError, match="optimisation profile"):
        check_input_shape(frames, (5, 64, 96, 3))
    with pytest.raises(FcnEdgeError, match="axis 1 = 64"):
        check_input_shape(frames, (1, 60, 96, 3))
    with pytest.raises(FcnEdgeError, match="rank"):
        check_input_shape(frames, (64, 96, 3))
    static = EngineTensor("frames", True, np.dtype(np.uint8), (1, 64, 96, 3))
    assert static.max_shape == static.min_shape == (1, 64, 96, 3)
    broken = EngineTensor("frames", True, np.dtype(np.uint8), (-1, 64, 96, 3))
    with pytest.raises(ArtifactError, match="no optimisation profile"):
        broken.max_shape


def test_two_buffer_sets_rotate_and_complete_in_order():
    ring = BufferRing(2)
    first = ring.acquire()
    second = ring.acquire()
    assert (first, second) == (0, 1) and ring.free == 0
    with pytest.raises(RuntimeError, match="in flight"):
        ring.acquire()
    with pytest.raises(RuntimeError, match="out of order"):
        ring.release(second)
    ring.release(first)
    assert ring.acquire() == 0  # frame N+2 reuses the set frame N freed
    assert ring.in_flight == [1, 0]
    ring.release(1)
    ring.release(0)
    assert ring.free == 2
    with pytest.raises(ValueError):
        BufferRing(0)


def test_engine_io_spec_frames_dynamic_and_raw_static():
    spec = engine_io_spec(dynamic_engine())
    assert spec.kind == "frames" and spec.size == (64, 96) and spec.batch is None and spec.max_batch == 4
    assert spec.input.min_shape == (1, 64, 96, 3) and spec.input.max_shape == (4, 64, 96, 3)
    assert spec.output_names == ("labels", "confidence")
    assert spec.output("labels").dtype == "int64"

    raw = [EngineTensor("input", True, np.dtype(np.float16), (1, 3, -1, -1),
                        ((1, 3, 128, 128), (1, 3, 256, 320), (1, 3, 512, 512))),
           EngineTensor("logits", False, np.dtype(np.float32), (1, 21, -1, -1))]
    spec = engine_io_spec(raw)
    assert spec.kind == "raw" and spec.size is None and spec.batch == 1
    assert spec.size_range == ((128, 128), (512, 512))
    assert spec.preferred_size == (256, 320)  # the profile's optimum
    assert spec.network_size((300, 300)) == (300, 300)
    with pytest.raises(FcnEdgeError, match="outside the model's range"):
        spec.network_size((600, 600))
    with pytest.raises(ArtifactError, match="2 inputs"):
        engine_io_spec(raw + [EngineTensor("x", True, np.dtype(np.float32), (1, 3))])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.uint8])
def test_output_dtype_normalisation(dtype):
    labels = np.random.default_rng(0).integers(0, 21, (2, 1, 8, 8))  # ArgMax with keepdims: [N,1,H,W]
    out = normalise_label_array(labels.astype(dtype), 21)
    assert out.dtype == np.uint8 and out.shape == (2, 8, 8)
    np.testing.assert_array_equal(out, labels[:, 0])
    many = normalise_label_array(np.array([[[300, 2]]], np.int64), 400)
    assert many.dtype == np.int32 and many[0, 0, 0] == 300


def test_build_result_from_engine_outputs(tiny_info):
    spec = engine_io_spec(dynamic_engine())
    outputs = {"labels": np.ones((1, 64, 96), np.int64), "confidence": np.full((1, 64, 96), 0.5, np.float16)}
    result = build_result(outputs, spec, tiny_info, {"compute": 1.0})
    assert result.labels.dtype == np.uint8 and result.confidence.dtype == np.float32
    assert result.timings == {"compute": 1.0}
