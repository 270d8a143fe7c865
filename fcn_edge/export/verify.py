"""Check an exported graph against PyTorch: ONNX Runtime (CPU) vs the same torch module.

What is compared, and why this way:

* **Logits**, always, even when the graph does not output them: the graph's internal
  logits tensor (the input of its ArgMax/Softmax) is exposed as an extra graph output
  in the temporary copy ONNX Runtime loads, so the nodes checked are exactly the nodes
  written (no second "verification variant" export to drift from the real one).  Criterion: ``max|onnx -
  torch| / max|torch| <= rtol`` (1e-4): relative to the logits' range, because an
  element-wise relative error is meaningless where logits cross zero.
* **Labels**: the ``labels`` output (or the argmax of both logits when it is not an
  output) must agree on >= 99.99% of pixels; only near-ties can differ.
* **Confidence**: uint8 within 1 step, float16 within 1e-3.
* With ``--fp16-weights`` the reference is the torch model with its weights rounded
  to float16 (what the file stores); agreement with the FP32 model is reported too.

Inputs are synthetic frames (noise, smooth colour fields with shapes, low-contrast
grey) in the camera's channel order, so the in-graph channel reorder and
normalisation are exercised; raw exports get the same frames normalised in PyTorch.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.export.passes import GraphPassError, expose_tensor, logits_tensor
from fcn_edge.lazy import require
from fcn_edge.runtime.synthetic import synthetic_frames  # noqa: F401 - the frames verify runs on


class VerificationError(FcnEdgeError):
    """The exported graph does not compute what the PyTorch model computes."""


@dataclass
class VerificationReport:
    shapes: list[tuple[int, int, int]]
    frames: int
    logits_max_abs_diff: float
    logits_max_abs: float
    logits_rel_diff: float
    label_agreement: float
    label_pixels: int
    confidence_max_diff: float | None
    rtol: float
    min_label_agreement: float
    reference: str
    fp32_label_agreement: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        shapes = ", ".join(f"{n}x{h}x{w}" for n, h, w in self.shapes)
        text = (f"ONNX Runtime vs {self.reference} on {self.frames} synthetic frames ({shapes}): "
                f"logits max diff {self.logits_max_abs_diff:.3g} = {self.logits_rel_diff:.2e} of their range "
                f"(limit {self.rtol:g}), labels agree on {self.label_agreement * 100:.4f}% of "
                f"{self.label_pixels} pixels (need {self.min_label_agreement * 100:.2f}%)")
        if self.confidence_max_diff is not None:
            text += f", confidence max diff {self.confidence_max_diff:.3g}"
        if self.fp32_label_agreement is not None:
            text += f"; labels vs the FP32 model: {self.fp32_label_agreement * 100:.4f}%"
        for note in self.notes:
            text += f" (note: {note})"
        return text

    def to_dict(self) -> dict:
        data = asdict(self)
        data["shapes"] = [list(s) for s in self.shapes]
        data["passed"] = self.passed
        for key in ("logits_max_abs_diff", "logits_max_abs", "logits_rel_diff", "label_agreement", "seconds"):
            data[key] = float(f"{data[key]:.6g}")
        return data


def verify_graph(model, module, *, io: str, preprocessing, shapes: list[tuple[int, int, int]], frames: int = 3,
                 rtol: float = 1e-4, min_label_agreement: float = 0.9999, reference: str = "PyTorch",
                 fp32_module=None, input_name: str = "frames", threads: int | None = None,
                 workdir: str | os.PathLike | None = None) -> VerificationReport:
    """Run ``model`` (an fcn-edge ``onnx.ModelProto``) in ONNX Runtime and ``module`` (its
    :class:`~fcn_edge.export.graph.DeployableFCN`) in PyTorch on the same inputs.

    ``shapes`` are ``(N, H, W)``: the first is run until ``frames`` frames are seen, the
    others once.  Returns the figures; :meth:`VerificationReport.passed` says if they meet
    the limits (the caller decides whether to raise).  ``workdir`` holds the temporary
    copy of the graph ONNX Runtime loads (default: the system's temporary folder).
    """
    torch = require("torch", purpose="to verify exports against PyTorch")
    ort = require("onnxruntime", purpose="to verify exported ONNX models")
    from fcn_edge.export.graph import preprocess_frames

    start = time.perf_counter()
    outputs = [o.name for o in model.graph.output]
    logits_name = logits_tensor(model)
    if logits_name is None:
        raise GraphPassError("cannot find the logits tensor (no logits output, ArgMax or Softmax)")
    session = _session(model, logits_name, ort, threads, workdir)
    added = logits_name not in outputs

    diff_max = ref_max = 0.0
    agree = pixels = 0
    conf_diff = None
    fp32_agree = 0
    problems: list[str] = []
    seen = 0
    runs: list[tuple[int, int, int]] = []
    for index, (n, h, w) in enumerate(shapes):
        repeats = max(1, -(-frames // n)) if index == 0 else 1
        for r in range(repeats):
            batch = synthetic_frames(n, h, w, seed=len(runs))
            runs.append((n, h, w))
            seen += n
            feed_t = torch.from_numpy(batch)
            if io == "raw":
                feed_t = preprocess_frames(feed_t, preprocessing)
            result = session.run(None, {input_name: feed_t.numpy()})
            got = dict(zip(outputs + ([logits_name] if added else []), result))
            with torch.no_grad():
                pre = module.pre(feed_t) if module.pre is not None else feed_t
                ref_logits = module.fcn(pre)
                ref = dict(zip(module.post.outputs, module.post(ref_logits)))
                fp32_logits = fp32_module.fcn(fp32_module.pre(feed_t) if fp32_module.pre is not None else feed_t) \
                    if fp32_module is not None else None
            ref_l = ref_logits.numpy()
            got_l = got[logits_name]
            if got_l.shape != ref_l.shape:
                problems.append(f"logits shape {got_l.shape} != PyTorch's {ref_l.shape} at {n}x{h}x{w}")
                continue
            diff_max = max(diff_max, float(np.abs(got_l.astype(np.float64) - ref_l).max()))
            ref_max = max(ref_max, float(np.abs(ref_l).max()))
            if "labels" in got:
                got_lab, ref_lab = got["labels"], ref["labels"].numpy()
                if (problem := _layout_mismatch("labels are", got_lab, ref_lab)):
                    problems.append(problem)
                    continue
            else:
                got_lab, ref_lab = got_l.argmax(1), ref_l.argmax(1)
            agree += int((got_lab == ref_lab).sum())
            pixels += int(ref_lab.size)
            if fp32_logits is not None:
                fp32_agree += int((got_lab.astype(np.int64) == fp32_logits.numpy().argmax(1)).sum())
            if "confidence" in got:
                c_got, c_ref = got["confidence"], ref["confidence"].numpy()
                if (problem := _layout_mismatch("confidence is", c_got, c_ref)):
                    problems.append(problem)
                    continue
                d = float(np.abs(c_got.astype(np.float64) - c_ref.astype(np.float64)).max())
                conf_diff = d if conf_diff is None else max(conf_diff, d)
            if "logits" in got and got["logits"].dtype != np.float32:
                problems.append(f"logits output is {got['logits'].dtype}, expected float32")
    rel = diff_max / ref_max if ref_max > 0 else diff_max
    agreement = agree / pixels if pixels else 0.0
    if rel > rtol:
        problems.append(f"logits differ by {rel:.2e} of their range (limit {rtol:g})")
    if agreement < min_label_agreement:
        problems.append(f"labels agree on {agreement * 100:.4f}% of pixels (need {min_label_agreement * 100:.2f}%)")
    if conf_diff is not None:
        limit = 1.0 if "uint8" in str(module.post.confidence_dtype) else 1e-3
        if conf_diff > limit:
            problems.append(f"confidence differs by {conf_diff:.3g} (limit {limit:g})")
    notes = []
    if ref_max == 0.0:
        notes.append("the logits are all zero (untrained score layers?), so this comparison shows little")
    return VerificationReport(
        shapes=sorted(set(runs), key=runs.index), frames=seen, logits_max_abs_diff=diff_max, logits_max_abs=ref_max,
        logits_rel_diff=rel, label_agreement=agreement, label_pixels=pixels, confidence_max_diff=conf_diff,
        rtol=rtol, min_label_agreement=min_label_agreement, reference=reference,
        fp32_label_agreement=(fp32_agree / pixels if fp32_module is not None and pixels else None),
        problems=problems, notes=notes, seconds=time.perf_counter() - start)


def _session(model, logits_name: str, ort, threads: int | None, workdir):
    """An ONNX Runtime session on ``model`` with ``logits_name`` exposed as an extra output.

    Memory matters at full size (540 MB of weights): the graph goes to ORT through a
    temporary file rather than a bytes object (ORT then holds one copy, not two), and
    with basic graph optimisations only -- the extended ones (NCHWc layout) briefly need
    four times the weights (+2.3 GB measured) and would check a rewritten graph rather
    than the one we wrote.
    """
    added = expose_tensor(model, logits_name)
    # named like fileio's temporaries (with the pid) so a copy left by a kill -9 is cleaned up later
    fd, name = tempfile.mkstemp(prefix=f".fcn-edge-tmp-{os.getpid()}-verify-", suffix=".onnx", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(model.SerializeToString())
    finally:
        if added:
            model.graph.output.pop()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.enable_cpu_mem_arena = False
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(name, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise VerificationError(f"ONNX Runtime cannot load the exported graph: {str(exc).splitlines()[0][:300]}") from exc
    finally:
        os.unlink(name)


def _layout_mismatch(what: str, got: np.ndarray, expected: np.ndarray) -> str | None:
    """``"<what> uint8[1, 64, 64], expected ..."`` when dtype or shape differ from PyTorch's; else None."""
    if got.dtype == expected.dtype and got.shape == expected.shape:
        return None
    return f"{what} {got.dtype}{list(got.shape)}, expected {expected.dtype}{list(expected.shape)}"
