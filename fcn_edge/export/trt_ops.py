"""What the TensorRT ONNX parser accepts, per TensorRT family, as data for the lint.

Source: onnx/onnx-tensorrt ``docs/operators.md`` ("Operator Support Matrix"):

* ``trt8``  -- the TensorRT 8.5 table ("TensorRT 8.5 supports operators up to Opset 17",
  onnx-tensorrt commit 6d0ab7be).  JetPack 5.1 ships 8.5.2 and JetPack 6.0 8.6.2; 8.6
  only adds operators (none an FCN uses), so the 8.5 table is the safe floor for both.
  UINT8 network I/O arrived in 8.5 (onnx-tensorrt changelog, 8.5 GA).
* ``trt10`` -- the TensorRT 10.15 table ("opset 9 to opset 24"); TensorRT 10.0's page
  says "opset 9 to opset 20", so opsets 21-24 are flagged as needing a late 10.x.
  Operators added late in 10.x (Attention in 10.14; RotaryEmbedding, RMSNormalization,
  TensorScatter in 10.15, per the changelog) are flagged likewise.
* ``trt11`` -- no 11.x table was available when this was written; the 10.15 table is
  used (11 removed builder precision flags, not parser operators).  Re-check against
  the 11.x operators.md when it is published.

Types are the "Supported Types" column (FP32, FP16, BF16, INT8, INT32, INT64, BOOL,
UINT8, ...).  Only the restrictions an exported CNN can run into are encoded in
:mod:`fcn_edge.export.lint`; the table itself is kept whole so the lint also serves
foreign ONNX files.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _table(text: str) -> dict[str, frozenset[str]]:
    table = {}
    for line in text.strip().splitlines():
        op, _, types = line.partition(":")
        table[op.strip()] = frozenset(t.strip() for t in types.split(",") if t.strip())
    return table


# ---------------------------------------------------------------- TensorRT 8.5 / 8.6
TRT8_SUPPORTED = _table("""
Abs: FP32, FP16, INT32
Acos: FP32, FP16
Acosh: FP32, FP16
Add: FP32, FP16, INT32
And: BOOL
ArgMax: FP32, FP16
ArgMin: FP32, FP16
Asin: FP32, FP16
Asinh: FP32, FP16
Atan: FP32, FP16
Atanh: FP32, FP16
AveragePool: FP32, FP16, INT8, INT32
BatchNormalization: FP32, FP16
Cast: FP32, FP16, INT32, INT8, BOOL, UINT8
Ceil: FP32, FP16
Celu: FP32, FP16
Clip: FP32, FP16, INT8
Concat: FP32, FP16, INT32, INT8, BOOL
Constant: FP32, FP16, INT32, INT8, BOOL
ConstantOfShape: FP32
Conv: FP32, FP16, INT8
ConvTranspose: FP32, FP16, INT8
Cos: FP32, FP16
Cosh: FP32, FP16
CumSum: FP32, FP16
DepthToSpace: FP32, FP16, INT32
DequantizeLinear: INT8
Div: FP32, FP16, INT32
Dropout: FP32, FP16
Einsum: FP32, FP16
Elu: FP32, FP16, INT8
Equal: FP32, FP16, INT32
Erf: FP32, FP16
Exp: FP32, FP16
Expand: FP32, FP16, INT32, BOOL
EyeLike: FP32, FP16, INT32, BOOL
Flatten: FP32, FP16, INT32, BOOL
Floor: FP32, FP16
Gather: FP32, FP16, INT8, INT32, BOOL
GatherElements: FP32, FP16, INT8, INT32, BOOL
GatherND: FP32, FP16, INT8, INT32, BOOL
Gemm: FP32, FP16, INT8
GlobalAveragePool: FP32, FP16, INT8
GlobalLpPool: FP32, FP16, INT8
GlobalMaxPool: FP32, FP16, INT8
Greater: FP32, FP16, INT32
GreaterOrEqual: FP32, FP16, INT32
GridSample: FP32, FP16
GRU: FP32, FP16
HardSwish: FP32, FP16, INT8
HardSigmoid: FP32, FP16, INT8
Identity: FP32, FP16, INT32, INT8, BOOL
If: FP32, FP16, INT32, BOOL
ImageScaler: FP32, FP16
InstanceNormalization: FP32, FP16
IsNaN: FP32, FP16, INT32
LeakyRelu: FP32, FP16, INT8
Less: FP32, FP16, INT32
LessOrEqual: FP32, FP16, INT32
Log: FP32, FP16
LogSoftmax: FP32, FP16
Loop: FP32, FP16, INT32, BOOL
LRN: FP32, FP16
LSTM: FP32, FP16
LpNormalization: FP32, FP16
LpPool: FP32, FP16, INT8
MatMul: FP32, FP16
Max: FP32, FP16, INT32
MaxPool: FP32, FP16, INT8
Mean: FP32, FP16, INT32
MeanVarianceNormalization: FP32, FP16
Min: FP32, FP16, INT32
Mod: FP32, FP16, INT32
Mul: FP32, FP16, INT32
Neg: FP32, FP16, INT32
NonMaxSuppression: FP32, FP16
NonZero: FP32, FP16
Not: BOOL
OneHot: FP32, FP16, INT32, BOOL
Or: BOOL
Pad: FP32, FP16, INT8, INT32
ParametricSoftplus: FP32, FP16, INT8
Pow: FP32, FP16
PRelu: FP32, FP16, INT8
QuantizeLinear: FP32, FP16
RandomNormal: FP32, FP16
RandomNormalLike: FP32, FP16
RandomUniform: FP32, FP16
RandomUniformLike: FP32, FP16
Range: FP32, FP16, INT32
Reciprocal: FP32, FP16
ReduceL1: FP32, FP16
ReduceL2: FP32, FP16
ReduceLogSum: FP32, FP16
ReduceLogSumExp: FP32, FP16
ReduceMax: FP32, FP16
ReduceMean: FP32, FP16
ReduceMin: FP32, FP16
ReduceProd: FP32, FP16
ReduceSum: FP32, FP16
ReduceSumSquare: FP32, FP16
Relu: FP32, FP16, INT8
Reshape: FP32, FP16, INT32, INT8, BOOL
Resize: FP32, FP16
ReverseSequence: FP32, FP16
RNN: FP32, FP16
RoiAlign: FP32, FP16
Round: FP32, FP16, INT8
ScaledTanh: FP32, FP16, INT8
Scan: FP32, FP16
Scatter: FP32, FP16, INT8, INT32
ScatterElements: FP32, FP16, INT8, INT32
ScatterND: FP32, FP16, INT8, INT32
Selu: FP32, FP16, INT8
Shape: FP32, FP16, INT32, INT8, BOOL
Shrink: FP32, FP16, INT32
Sigmoid: FP32, FP16, INT8
Sign: FP32, FP16, INT8, INT32
Sin: FP32, FP16
Sinh: FP32, FP16
Size: FP32, FP16, INT32, INT8, BOOL
Slice: FP32, FP16, INT32, INT8, BOOL
Softmax: FP32, FP16
Softplus: FP32, FP16, INT8
Softsign: FP32, FP16, INT8
SpaceToDepth: FP32, FP16, INT32
Split: FP32, FP16, INT32, BOOL
Sqrt: FP32, FP16
Squeeze: FP32, FP16, INT32, INT8, BOOL
Sub: FP32, FP16, INT32
Sum: FP32, FP16, INT32
Tan: FP32, FP16
Tanh: FP32, FP16, INT8
ThresholdedRelu: FP32, FP16, INT8
Tile: FP32, FP16, INT32, BOOL
TopK: FP32, FP16
Transpose: FP32, FP16, INT32, INT8, BOOL
Trilu: FP32, FP16, INT32, INT8, BOOL
Unsqueeze: FP32, FP16, INT32, INT8, BOOL
Upsample: FP32, FP16
Where: FP32, FP16, INT32, BOOL
Xor: BOOL
""")

TRT8_UNSUPPORTED = frozenset("""
Bernoulli BitShift BlackmanWindow Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear
HammingWindow HannWindow Hardmax IsInf LayerNormalization MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix
Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul
STFT SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
SoftmaxCrossEntropyLoss SplitToSequence StringNormalizer TfIdfVectorizer Unique
""".split())

# ---------------------------------------------------------------- TensorRT 10.x (10.15 table)
_F = "FP32, FP16, BF16"
_FI = "FP32, FP16, BF16, INT32, INT64"
_FIB = "FP32, FP16, BF16, INT32, INT64, BOOL"
TRT10_SUPPORTED = _table(f"""
Abs: {_FI}
Acos: {_F}
Acosh: {_F}
Add: {_FI}
And: BOOL
ArgMax: {_FI}
ArgMin: {_FI}
Asin: {_F}
Asinh: {_F}
Atan: {_F}
Atanh: {_F}
Attention: {_F}, INT8, FP8
AveragePool: {_F}
BatchNormalization: {_F}
BlackmanWindow: FP32, FP16
Cast: {_FIB}, UINT8
CastLike: {_FIB}, UINT8
Ceil: {_F}
Celu: {_F}
Clip: {_F}
Concat: {_FIB}
Constant: {_FIB}, FP8, FP4, INT4
ConstantOfShape: {_FIB}, FP8, FP4, INT4
Conv: {_F}
ConvTranspose: {_F}
Cos: {_F}
Cosh: {_F}
CumSum: {_F}
DeformConv: FP32, FP16
DepthToSpace: {_FI}
DequantizeLinear: INT8, FP8, FP4, INT4
Div: {_FI}
Dropout: {_F}
Einsum: {_F}
Elu: {_F}
Equal: {_FI}
Erf: {_F}
Exp: {_F}
Expand: {_FIB}
EyeLike: {_FIB}
Flatten: {_FIB}
Floor: {_F}
Gather: {_FIB}
GatherElements: {_FIB}
GatherND: {_FIB}
Gelu: {_FI}, INT8
Gemm: {_F}
GlobalAveragePool: {_F}
GlobalLpPool: {_F}
GlobalMaxPool: {_F}
Greater: {_FI}
GreaterOrEqual: {_FI}
GridSample: FP32, FP16
GroupNormalization: {_F}
GRU: {_F}
HammingWindow: FP32, FP16
HannWindow: FP32, FP16
HardSigmoid: {_F}
HardSwish: {_F}
Hardmax: {_F}
Identity: {_FIB}
If: {_FIB}
ImageScaler: {_F}
InstanceNormalization: {_F}
IsInf: {_F}
IsNaN: {_FI}
LayerNormalization: {_F}
LeakyRelu: {_F}
Less: {_FI}
LessOrEqual: {_FI}
Log: {_F}
LogSoftmax: {_F}
Loop: {_FIB}
LRN: {_F}
LSTM: {_F}
LpNormalization: {_F}
LpPool: {_F}
MatMul: {_F}
Max: {_FI}
MaxPool: {_F}
Mean: {_FI}, FP8
MeanVarianceNormalization: {_F}
Min: {_FI}
Mish: FP32, FP16
Mod: {_FI}
Mul: {_FI}
Neg: {_FI}
NonMaxSuppression: FP32, FP16
NonZero: FP32, FP16
Not: BOOL
OneHot: {_FIB}
Or: BOOL
Pad: {_FI}
ParametricSoftplus: {_F}
Pow: {_FI}
PRelu: {_F}
QuantizeLinear: {_F}
RandomNormal: {_F}
RandomNormalLike: {_F}
RandomUniform: {_F}
RandomUniformLike: {_F}
Range: {_FI}
Reciprocal: {_F}
ReduceL1: {_FI}
ReduceL2: {_FI}
ReduceLogSum: {_FI}
ReduceLogSumExp: {_FI}
ReduceMax: {_FI}
ReduceMean: {_FI}
ReduceMin: {_FI}
ReduceProd: {_FI}
ReduceSum: {_FI}
ReduceSumSquare: {_FI}
Relu: {_FI}
Reshape: {_FIB}
Resize: {_F}
ReverseSequence: {_FIB}
RMSNormalization: {_F}
RNN: {_F}
RoiAlign: FP32, FP16
RotaryEmbedding: {_F}
Round: {_F}
STFT: FP32
ScaledTanh: {_F}
Scan: {_F}
Scatter: {_FI}
ScatterElements: {_FI}
ScatterND: {_FI}
Selu: {_F}
Shape: {_FIB}
Shrink: {_FI}
Sigmoid: {_F}
Sign: {_FI}
Sin: {_F}
Sinh: {_F}
Size: {_FIB}
Slice: {_FIB}
Softmax: {_F}
Softplus: {_F}
Softsign: {_F}
SpaceToDepth: {_FI}
Split: {_FIB}
Sqrt: {_F}
Squeeze: {_FIB}
Sub: {_FI}
Sum: {_FI}
Tan: {_F}
Tanh: {_F}
TensorScatter: FP32, FP16, BF16, INT32
ThresholdedRelu: {_F}
Tile: {_FIB}
TopK: {_FI}
Transpose: {_FIB}
Trilu: {_FIB}
Unsqueeze: {_FIB}
Upsample: {_F}
Where: {_FIB}
Xor: BOOL
""")

TRT10_UNSUPPORTED = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat
StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())

TRT10_LATE_OPS = {"Attention": "10.14", "RotaryEmbedding": "10.15", "RMSNormalization": "10.15",
                  "TensorScatter": "10.15"}


@dataclass(frozen=True)
class TargetSpec:
    """One TensorRT family as the lint sees it."""

    key: str
    title: str
    supported: dict[str, frozenset[str]]
    unsupported: frozenset[str]
    max_opset: int                 # above: refused by every release of the family
    safe_opset: int                # above (and <= max): only later releases of the family
    tensor_types: frozenset[str]   # element types tensors may have inside the network
    int64_native: bool             # False: INT64 is cast down to INT32 by the parser
    late_ops: dict[str, str] = field(default_factory=dict)


TARGETS: dict[str, TargetSpec] = {
    "trt8": TargetSpec("trt8", "TensorRT 8.5/8.6 (JetPack 5.1, 6.0)", TRT8_SUPPORTED, TRT8_UNSUPPORTED,
                       max_opset=17, safe_opset=17,
                       tensor_types=frozenset({"FP32", "FP16", "INT32", "INT8", "BOOL"}), int64_native=False),
    "trt10": TargetSpec("trt10", "TensorRT 10.x (JetPack 6.1/6.2, desktop)", TRT10_SUPPORTED, TRT10_UNSUPPORTED,
                        max_opset=24, safe_opset=20,
                        tensor_types=frozenset({"FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "FP8", "INT4", "BOOL"}),
                        int64_native=True, late_ops=TRT10_LATE_OPS),
    "trt11": TargetSpec("trt11", "TensorRT 11.x (desktop, strongly typed)", TRT10_SUPPORTED, TRT10_UNSUPPORTED,
                        max_opset=24, safe_opset=24,
                        tensor_types=frozenset({"FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "FP8", "INT4", "BOOL"}),
                        int64_native=True),
}
DEFAULT_TARGETS = ("trt8", "trt10")

# ONNX TensorProto element type -> the names the tables use
ONNX_TO_TRT_TYPE = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                    8: "STRING", 9: "BOOL", 10: "FP16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
                    16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 21: "UINT4", 22: "INT4", 23: "FP4"}
