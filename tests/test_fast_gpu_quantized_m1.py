"""fast.gpu's twins of the quantized rules (rule 2: DGEMM products, fast/gpu/integer_m1.py; rule 3: int8-valued
SGEMM products in K-chunks, fast/gpu/int8_m1.py; rule 4: one int8-valued SGEMM per K-chunk and bfloat16 keys and
values, fast/gpu/int8_rows_m1.py; all with rule 1's numba.cuda kernels) against ref bit for bit, and Equal-Info
files made with fast/cpu's rows (rule 4: ref's, until its cpu twin lands) decoded with the GPU twin's.

Under numba's CUDA simulator the kernels run on NumPy (shapes stay small); on a GPU the same tests check cuBLAS's
GEMMs and the kernels for real."""
import numpy as np
import pytest
from helpers import m1_inputs

from equalinfo.fast.cpu import equalinfo as cpu_equalinfo
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu import integer_m1 as cpu_int
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref import int8_m1, int8_rows_m1, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import bytes_to_symbols
from gpu_support import MODE, needs_kernels, quick_simulator_threads  # noqa: F401
from test_int8_rows_m1 import bfloat16_edge_values

pytestmark = needs_kernels

if MODE is not None:
    from equalinfo.fast.gpu import int8_m1 as gpu_int8
    from equalinfo.fast.gpu import int8_rows_m1 as gpu_int8_rows
    from equalinfo.fast.gpu import integer_m1 as gpu_int

REF = {2: integer_m1, 3: int8_m1, 4: int8_rows_m1}
CPU = {2: cpu_int, 3: cpu_int8}


def gpu_rule(rule):
    return {2: gpu_int, 3: gpu_int8, 4: gpu_int8_rows}[rule]


def same_bits(a, b):
    """Equal bit for bit (so +0.0 is not -0.0), in the same dtype and shape."""
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def small(rule, dtype="float32", seed=0):
    cfg = tr.Config(vocab_in=258, vocab_out=257, d_model=8, n_heads=2, n_layers=1, d_ff=12, num_buckets=8,
                    max_distance=6, dtype=dtype)
    params = tr.init_params(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for name in params:
        if name.endswith("norm") or name.endswith("rel_bias"):
            params[name] = (1.0 + rng.normal(size=params[name].shape)).astype(cfg.dtype)
    return REF[rule].quantize_params(params, cfg), cfg


@pytest.mark.parametrize("rule", sorted(REF))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 16)])
def test_next_probs_bit_identical(rule, dtype, shape):
    qparams, cfg = small(rule, dtype)
    inputs = m1_inputs(shape)
    got = gpu_rule(rule).next_probs(qparams, cfg, inputs)
    assert got.dtype == np.float64 and got.shape == shape + (257,)
    assert same_bits(got, REF[rule].next_probs(qparams, cfg, inputs))


@pytest.mark.parametrize("width", [5, 1040, 2100])
def test_int8_product_over_several_chunks(width):
    """Rule 3's product on the device, with one, exactly one full, and three K-chunks, at the extreme operands
    (every weight +-127, rows with entries at 2^14 - 1 after quantization) and at random ones."""
    rng = np.random.default_rng(width)
    weights = {"w": rng.normal(size=(width, 7)).astype(np.float32)}
    weights["w"][:, 0] = 1.0  # a column of equal weights: all quantize to +127
    qparams = dict(zip(("w.int", "w.scale"), int8_m1.quantize_weight(weights["w"])))
    x = rng.normal(size=(3, width)).astype(np.float32)
    x[0] = 1.0  # every entry the row's maximum: x_int = 16383 throughout, the largest partial sums
    assert np.array_equal(gpu_int8.int8_matmul(x, qparams, "w"), int8_m1.int8_matmul(x, qparams, "w"))


@pytest.mark.parametrize("width", [5, 1040, 2080])
@pytest.mark.parametrize("name", ["w", "blocks.0.wv"])  # a plain product, and a value product (bfloat16)
def test_int8_rows_product_over_two_chunks(width, name):
    """Rule 4's product on the device, with one, exactly one full, and two full K-chunks, at the extreme operands
    (rows of +-127 after quantization against weights of +-127), a zero weight column under a negative row (every
    term -0.0: acc must be ref's +0.0), a zero row, and random rows; the same bits as ref."""
    rng = np.random.default_rng(width)
    w = rng.normal(size=(width, 7)).astype(np.float32)
    w[:, 0] = 1.0  # a column of equal weights: all quantize to +127
    w[:, 1] = np.where(rng.random(width) < 0.5, -1.0, 1.0)  # +-127
    w[:, 2] = 0.0
    qparams = dict(zip((name + ".int", name + ".scale"), int8_m1.quantize_weight(w)))  # rule 3's arrays
    x = (rng.normal(size=(6, width)) * 10.0 ** rng.integers(-3, 3, size=(6, 1))).astype(np.float32)
    x[0] = 127.0  # e = 0, x_int = 127 throughout: the largest partial sums
    x[1] = -np.float32(0.99)  # x_int = -127 throughout
    x[2] = np.where(rng.random(width) < 0.5, -127.0, 127.0)
    x[3] = 0.0
    want = int8_rows_m1.int8_rows_matmul(x, qparams, name)
    assert np.abs(int8_rows_m1.chunked_product(int8_rows_m1.quantize_rows(x)[0], qparams[name + ".int"])).max() == \
        width * 127 * 127
    assert same_bits(gpu_int8_rows.int8_rows_matmul(x, qparams, name), want)
    assert same_bits(gpu_int8_rows.int8_rows_matmul(x.astype(np.float64), qparams, name),
                     int8_rows_m1.int8_rows_matmul(x.astype(np.float64), qparams, name))
    assert all(same_bits(got, want) for got, want in zip(gpu_int8_rows.quantize_rows(x), int8_rows_m1.quantize_rows(x)))


def test_chunk_sums_start_from_plus_zero():
    """The K-chunks' float64 sum starts from +0.0, as ref's: a GEMM that returns -0.0 (every term -0.0, as a
    negative row against a zero weight column gives, which a GEMM may or may not sum to -0.0) still gives +0.0."""
    from equalinfo.fast.gpu import device
    w_chunks = [device.xp().zeros((1040, 3), dtype=np.float32), device.xp().zeros((7, 3), dtype=np.float32)]
    acc = gpu_int8._sum_over_chunks(w_chunks, 2, lambda start, stop, w: device.xp().full((2, 3), -0.0))
    assert acc.shape == (2, 3) and not np.signbit(device.host(acc)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bfloat16_rounding_on_the_device_is_refs(dtype):
    """The device's integer rounding on ties, a unit either side of them, subnormals, signed zeros, overflow to
    infinity and random finite values; float64 through float32, as ref."""
    values = bfloat16_edge_values().astype(dtype)
    got = gpu_int8_rows.to_bfloat16(values)
    assert same_bits(got, int8_rows_m1.to_bfloat16(values))


def test_ref_files_decode_with_the_rule_4_gpu_twin():
    qparams, cfg = small(4)
    ref_model = TransformerModel(qparams, cfg, rule=4)
    gpu_model = TransformerModel(qparams, cfg, rule=4, rows=gpu_int8_rows.next_probs)
    text = bytes_to_symbols(b"Now is the winter")
    bits = ref_equalinfo.compress(text, ref_model, 16)
    assert np.array_equal(ref_equalinfo.decompress(bits, gpu_model, 16, n_symbols=len(text)), text)


@pytest.mark.parametrize("rule", sorted(CPU))
def test_cpu_files_decode_with_the_gpu_twin(rule):
    qparams, cfg = small(rule)
    cpu_model = TransformerModel(qparams, cfg, rule=rule, rows=CPU[rule].next_probs)
    gpu_model = TransformerModel(qparams, cfg, rule=rule, rows=gpu_rule(rule).next_probs)
    text = bytes_to_symbols(b"Now is the winter")
    [bits] = cpu_equalinfo.compress_batch([text], cpu_model, 16)
    assert np.array_equal(ref_equalinfo.decompress(bits, gpu_model, 16, n_symbols=len(text)), text)
