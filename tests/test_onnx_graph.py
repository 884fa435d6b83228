"""fast/cpu/onnx_graph.py writes the int8 GEMM's one-node ONNX model without the onnx package: its bytes must be
exactly onnx.helper's (where onnx is installed), and onnxruntime must run them to the exact integer products."""
import numpy as np
import pytest

from equalinfo.fast.cpu import onnx_graph


def helper_model(weights, zero_point):
    """The same model built by onnx.helper, as fast/cpu/int8_gemm.py built it before onnx_graph.py."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "A_zero"], ["Y"])], "int8_gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["R", weights.shape[0]])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["R", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "B"),
                     numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), "A_zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_graph.OPSET)])
    model.ir_version = onnx_graph.IR_VERSION
    return model.SerializeToString()


# 3m's shapes (q/k/v side by side, w_down, unembed), the smallest, and sizes whose varints take 1, 2 and 3 bytes
@pytest.mark.parametrize("shape", [(256, 768), (1024, 256), (256, 257), (1, 1), (127, 128), (3, 16385)])
def test_bytes_are_onnx_helpers(shape):
    weights = np.random.default_rng(shape[0] * 7 + shape[1]).integers(-127, 128, shape, dtype=np.int8)
    assert onnx_graph.matmul_integer_model(weights, 128) == helper_model(weights, 128)


def test_varint_against_its_definition():
    for value in [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31 - 1, 2 ** 40 + 5]:
        encoded = onnx_graph._varint(value)
        assert all(b & 0x80 for b in encoded[:-1]) and not encoded[-1] & 0x80  # more-bits flags
        assert sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded)) == value


def test_onnxruntime_runs_it_to_the_exact_integers():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(5)
    weights = rng.integers(-127, 128, (300, 70), dtype=np.int8)
    rows = rng.integers(1, 256, (9, 300), dtype=np.uint8)
    session = ort.InferenceSession(onnx_graph.matmul_integer_model(weights, 128), providers=["CPUExecutionProvider"])
    (got,) = session.run(["Y"], {"A": rows})
    assert got.dtype == np.int32
    assert np.array_equal(got, (rows.astype(np.int64) - 128) @ weights.astype(np.int64))


def test_refuses_weights_that_are_not_int8_matrices():
    with pytest.raises(ValueError, match="int8"):
        onnx_graph.matmul_integer_model(np.zeros((2, 2), dtype=np.int16), 128)
    with pytest.raises(ValueError, match="int8"):
        onnx_graph.matmul_integer_model(np.zeros(4, dtype=np.int8), 128)
