"""The one ONNX model fast.cpu.int8_gemm runs, written as protobuf bytes without the `onnx` package.

Why not `onnx.helper`: the model is one node (MatMulInteger: u8 rows, the int8 weights as an initializer, the
rows' zero point 128 -> int32), and importing `onnx` to build it cost ~0.6-1.0 s in every process that codes with
M1 (the command's process and each worker; bench/README.md, round 6) -- a tenth of a small file's decompression.
onnxruntime itself reads the bytes; a test (tests/test_onnx_graph.py) checks that they are byte for byte what
onnx.helper makes, where onnx is installed (the `test` extra).

The wire format (protobuf, onnx.proto3's field numbers): every field is a key varint (field number << 3 | wire
type) then a varint (wire type 0) or a length-delimited payload (wire type 2: varint length, then the bytes).
Fields are written in field-number order within each message, as protobuf's serializer writes them.

    ModelProto       1 ir_version (varint), 7 graph, 8 opset_import
    GraphProto       1 node, 2 name, 5 initializer, 11 input, 12 output
    NodeProto        1 input (repeated), 2 output, 4 op_type
    TensorProto      1 dims (repeated varint), 2 data_type, 8 name, 9 raw_data
    ValueInfoProto   1 name, 2 type
    TypeProto        1 tensor_type: 1 elem_type, 2 shape: 1 dim (repeated): 1 dim_value | 2 dim_param
    OperatorSetId    1 domain, 2 version
"""
import numpy as np

UINT8, INT8, INT32 = 2, 3, 6  # TensorProto.DataType
IR_VERSION = 8  # readable by onnxruntime >= 1.17
OPSET = 13  # MatMulInteger exists from opset 10
ZERO_POINT_NAME, ROWS_NAME, WEIGHTS_NAME, OUTPUT_NAME = "A_zero", "A", "B", "Y"


def _varint(value):
    """Protobuf's base-128 varint of a non-negative integer (7 bits a byte, low first, high bit = more)."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _number(field, value):
    """A varint field."""
    return _varint(field << 3) + _varint(value)


def _bytes(field, payload):
    """A length-delimited field (a string, bytes or an embedded message)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name, array, data_type):
    """TensorProto of a C-contiguous array, its bytes as raw_data (little-endian, as NumPy holds them here)."""
    dims = b"".join(_number(1, int(d)) for d in array.shape)
    return dims + _number(2, data_type) + _bytes(8, name) + _bytes(9, np.ascontiguousarray(array).tobytes())


def _value_info(name, elem_type, dims):
    """ValueInfoProto of a tensor whose dims are ints (dim_value) or names (dim_param, any size)."""
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _number(1, d)) for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _number(1, elem_type) + _bytes(2, shape)))


def matmul_integer_model(weights, zero_point, graph_name="int8_gemm"):
    """Serialized ModelProto: Y int32 [R, m] = MatMulInteger(A u8 [R, K], weights int8 [K, m], a_zero_point =
    zero_point), R free; weights and the zero point are initializers (onnxruntime packs the weights once)."""
    weights = np.asarray(weights)
    if weights.dtype != np.int8 or weights.ndim != 2:
        raise ValueError(f"weights must be int8 [K, m], got {weights.dtype} {weights.shape}")
    k, m = (int(d) for d in weights.shape)
    node = b"".join(_bytes(1, name) for name in (ROWS_NAME, WEIGHTS_NAME, ZERO_POINT_NAME)) + \
        _bytes(2, OUTPUT_NAME) + _bytes(4, "MatMulInteger")
    graph = (_bytes(1, node) + _bytes(2, graph_name)
             + _bytes(5, _tensor(WEIGHTS_NAME, weights, INT8))
             + _bytes(5, _tensor(ZERO_POINT_NAME, np.array(zero_point, dtype=np.uint8), UINT8))
             + _bytes(11, _value_info(ROWS_NAME, UINT8, ["R", k]))
             + _bytes(12, _value_info(OUTPUT_NAME, INT32, ["R", m])))
    return _number(1, IR_VERSION) + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _number(2, OPSET))
