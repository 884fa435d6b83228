"""fast.gpu's twins of the quantized rules (rule 2: DGEMM products, fast/gpu/integer_m1.py; rule 3: int8-valued
SGEMM products in K-chunks, fast/gpu/int8_m1.py; both with rule 1's numba.cuda kernels) against ref bit for bit,
and Equal-Info files made with fast/cpu's rows decoded with the GPU twin's.

Under numba's CUDA simulator the kernels run on NumPy (shapes stay small); on a GPU the same tests check cuBLAS's
GEMMs and the kernels for real."""
import numpy as np
import pytest
from helpers import m1_inputs

from equalinfo.fast.cpu import equalinfo as cpu_equalinfo
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu import integer_m1 as cpu_int
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref import int8_m1, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import bytes_to_symbols
from gpu_support import MODE, needs_kernels, quick_simulator_threads  # noqa: F401

pytestmark = needs_kernels

if MODE is not None:
    from equalinfo.fast.gpu import int8_m1 as gpu_int8
    from equalinfo.fast.gpu import integer_m1 as gpu_int

REF = {2: integer_m1, 3: int8_m1}
CPU = {2: cpu_int, 3: cpu_int8}


def gpu_rule(rule):
    return {2: gpu_int, 3: gpu_int8}[rule]


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
    assert np.array_equal(got, REF[rule].next_probs(qparams, cfg, inputs))


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


@pytest.mark.parametrize("rule", sorted(REF))
def test_cpu_files_decode_with_the_gpu_twin(rule):
    qparams, cfg = small(rule)
    cpu_model = TransformerModel(qparams, cfg, rule=rule, rows=CPU[rule].next_probs)
    gpu_model = TransformerModel(qparams, cfg, rule=rule, rows=gpu_rule(rule).next_probs)
    text = bytes_to_symbols(b"Now is the winter")
    [bits] = cpu_equalinfo.compress_batch([text], cpu_model, 16)
    assert np.array_equal(ref_equalinfo.decompress(bits, gpu_model, 16, n_symbols=len(text)), text)
