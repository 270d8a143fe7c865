"""Just enough of the protobuf wire format to read an ONNX file's header without onnx.

Reading the metadata of a 540 MB ONNX file with ``onnx.load`` parses (and copies) every
weight.  The fields later stages need (``metadata_props``, ``opset_import``, the
graph's inputs and outputs) sit beside the weights in the top-level ``ModelProto``,
so this walks the file through ``mmap`` and skips the large fields by their length
prefix: milliseconds, a few KB of memory, and no ``onnx`` package (a Jetson that
builds engines with TensorRT's own parser may not have it).

Field numbers are those of onnx.proto (stable since ONNX 1.0).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

# ModelProto
_IR_VERSION, _PRODUCER_NAME, _PRODUCER_VERSION, _GRAPH, _OPSET_IMPORT, _METADATA_PROPS = 1, 2, 3, 7, 8, 14
# GraphProto
_GRAPH_NODE, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 11, 12, 5, 15
# ModelProto.functions -> FunctionProto.node
_MODEL_FUNCTIONS, _FUNCTION_NODE = 25, 7
# NodeProto.attribute -> AttributeProto: t, g, tensors, graphs, sparse_tensor, sparse_tensors
_NODE_ATTRIBUTE = 5
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
# TensorProto: name, external_data (StringStringEntryProto), data_location; SparseTensorProto: values, indices
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
# Subgraphs nest (If/Loop bodies); deeper than this is not a model anyone exported.
_MAX_GRAPH_DEPTH = 16
# ONNX TensorProto.DataType numbers -> numpy-style names
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


@dataclass
class TensorInfo:
    name: str
    dtype: str | None
    shape: list[int | str] | None  # ints for fixed dims, names for symbolic ones, None if unknown


@dataclass
class OnnxHeader:
    """The small parts of an ONNX file: what fcn-edge needs without loading the weights."""

    ir_version: int | None = None
    producer_name: str = ""
    producer_version: str = ""
    opsets: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    inputs: list[TensorInfo] = field(default_factory=list)  # graph inputs that are not initializers
    outputs: list[TensorInfo] = field(default_factory=list)
    has_graph: bool = False
    # (tensor name, location) of every tensor whose data lives in another file, wherever it sits
    # (initializers, sparse initializers, Constant/attribute tensors, subgraphs, functions)
    external_data: list[tuple[str, str]] = field(default_factory=list)


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def iter_fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values are ``(start, end)``."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 1:
            pos += 8
            yield number, wire, 0
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError("length-delimited field runs past the end")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            pos += 4
            yield number, wire, 0
        else:
            raise WireError(f"unsupported wire type {wire}")
    if pos != end:
        raise WireError("message runs past its end")


def _text(buf, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="replace")


def _string_pair(buf, span) -> tuple[str, str]:
    key = value = ""
    for number, wire, val in iter_fields(buf, *span):
        if wire == 2 and number == 1:
            key = _text(buf, val)
        elif wire == 2 and number == 2:
            value = _text(buf, val)
    return key, value


def _opset(buf, span) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, val in iter_fields(buf, *span):
        if number == 1 and wire == 2:
            domain = _text(buf, val)
        elif number == 2 and wire == 0:
            version = int(val)
    return domain, version


def _value_info(buf, span) -> TensorInfo:
    name, dtype, shape = "", None, None
    for number, wire, val in iter_fields(buf, *span):
        if number == 1 and wire == 2:
            name = _text(buf, val)
        elif number == 2 and wire == 2:  # TypeProto
            for tnum, twire, tval in iter_fields(buf, *val):
                if tnum == 1 and twire == 2:  # tensor_type
                    for inum, iwire, ival in iter_fields(buf, *tval):
                        if inum == 1 and iwire == 0:
                            dtype = ELEM_TYPES.get(int(ival), f"type{ival}")
                        elif inum == 2 and iwire == 2:  # TensorShapeProto
                            shape = []
                            for snum, swire, sval in iter_fields(buf, *ival):
                                if snum == 1 and swire == 2:  # Dimension
                                    dim: int | str = "?"
                                    for dnum, dwire, dval in iter_fields(buf, *sval):
                                        if dnum == 1 and dwire == 0:
                                            dim = int(dval)
                                        elif dnum == 2 and dwire == 2:
                                            dim = _text(buf, dval)
                                    shape.append(dim)
    return TensorInfo(name, dtype, shape)


def _initializer_name(buf, span) -> str:
    for number, wire, val in iter_fields(buf, *span):
        if number == _TENSOR_NAME and wire == 2:
            return _text(buf, val)
    return ""


def _tensor_external(buf, span, found: list[tuple[str, str]]) -> str:
    """A TensorProto's name; appends ``(name, location)`` when its data is in an external file."""
    name, location, external = "", None, False
    for number, wire, val in iter_fields(buf, *span):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(buf, val)
        elif number == _TENSOR_DATA_LOCATION and wire == 0:
            external = external or val == 1  # TensorProto.EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            key, value = _string_pair(buf, val)
            external = True
            if key == "location":
                location = value
    if external:
        found.append((name, location or ""))
    return name


def _sparse_external(buf, span, found: list[tuple[str, str]]) -> None:
    for number, wire, val in iter_fields(buf, *span):
        if number in (_SPARSE_VALUES, _SPARSE_INDICES) and wire == 2:
            _tensor_external(buf, val, found)


def _node_external(buf, span, found: list[tuple[str, str]], depth: int) -> None:
    for number, wire, val in iter_fields(buf, *span):
        if number != _NODE_ATTRIBUTE or wire != 2:
            continue
        for anum, awire, aval in iter_fields(buf, *val):
            if awire != 2:
                continue
            if anum in (_ATTR_TENSOR, _ATTR_TENSORS):
                _tensor_external(buf, aval, found)
            elif anum in (_ATTR_SPARSE, _ATTR_SPARSES):
                _sparse_external(buf, aval, found)
            elif anum in (_ATTR_GRAPH, _ATTR_GRAPHS):
                _graph_external(buf, aval, found, depth + 1)


def _graph_external(buf, span, found: list[tuple[str, str]], depth: int) -> None:
    """External-data tensors of a (sub)graph: initializers and node attributes, recursively."""
    if depth > _MAX_GRAPH_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for number, wire, val in iter_fields(buf, *span):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER:
            _tensor_external(buf, val, found)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            _sparse_external(buf, val, found)
        elif number == _GRAPH_NODE:
            _node_external(buf, val, found, depth)


def parse_header(buf, start: int = 0, end: int | None = None) -> OnnxHeader:
    end = len(buf) if end is None else end
    header = OnnxHeader()
    for number, wire, val in iter_fields(buf, start, end):
        if number == _IR_VERSION and wire == 0:
            header.ir_version = int(val)
        elif number == _PRODUCER_NAME and wire == 2:
            header.producer_name = _text(buf, val)
        elif number == _PRODUCER_VERSION and wire == 2:
            header.producer_version = _text(buf, val)
        elif number == _OPSET_IMPORT and wire == 2:
            domain, version = _opset(buf, val)
            header.opsets[domain] = version
        elif number == _METADATA_PROPS and wire == 2:
            key, value = _string_pair(buf, val)
            header.metadata[key] = value
        elif number == _GRAPH and wire == 2:
            header.has_graph = True
            inputs, initializers = [], set()
            for gnum, gwire, gval in iter_fields(buf, *val):
                if gwire != 2:
                    continue
                if gnum == _GRAPH_INPUT:
                    inputs.append(_value_info(buf, gval))
                elif gnum == _GRAPH_OUTPUT:
                    header.outputs.append(_value_info(buf, gval))
                elif gnum == _GRAPH_INITIALIZER:
                    initializers.add(_tensor_external(buf, gval, header.external_data))
                elif gnum == _GRAPH_SPARSE_INITIALIZER:
                    _sparse_external(buf, gval, header.external_data)
                elif gnum == _GRAPH_NODE:
                    _node_external(buf, gval, header.external_data, 0)
            header.inputs = [t for t in inputs if t.name not in initializers]
        elif number == _MODEL_FUNCTIONS and wire == 2:
            for fnum, fwire, fval in iter_fields(buf, *val):
                if fnum == _FUNCTION_NODE and fwire == 2:
                    _node_external(buf, fval, header.external_data, 0)
    return header


def read_header(path: str | os.PathLike) -> OnnxHeader:
    """Parse ``path``'s ModelProto header through mmap; :class:`WireError` if it is not protobuf."""
    path = Path(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise WireError("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return parse_header(buf, 0, size)
