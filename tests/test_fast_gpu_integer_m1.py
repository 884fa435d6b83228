"""fast.gpu.integer_m1 (cuBLAS/DGEMM products + rule 1's numba.cuda kernels) against ref.integer_m1 bit for bit,
and Equal-Info files made with fast/cpu's rule-2 rows decoded with the GPU twin's.

Under numba's CUDA simulator the kernels run on NumPy (shapes stay small); on a GPU the same tests check cuBLAS's
DGEMM and the kernels for real."""
import numpy as np
import pytest
from helpers import m1_inputs

from equalinfo.fast.cpu import equalinfo as cpu_equalinfo
from equalinfo.fast.cpu import integer_m1 as cpu_int
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref import integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import bytes_to_symbols
from gpu_support import MODE, needs_kernels, quick_simulator_threads  # noqa: F401

pytestmark = needs_kernels

if MODE is not None:
    from equalinfo.fast.gpu import integer_m1 as gpu_int


def small(dtype="float32", seed=0):
    cfg = tr.Config(vocab_in=258, vocab_out=257, d_model=8, n_heads=2, n_layers=1, d_ff=12, num_buckets=8,
                    max_distance=6, dtype=dtype)
    params = tr.init_params(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for name in params:
        if name.endswith("norm") or name.endswith("rel_bias"):
            params[name] = (1.0 + rng.normal(size=params[name].shape)).astype(cfg.dtype)
    return integer_m1.quantize_params(params, cfg), cfg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 16)])
def test_next_probs_bit_identical(dtype, shape):
    qparams, cfg = small(dtype)
    inputs = m1_inputs(shape)
    got = gpu_int.next_probs(qparams, cfg, inputs)
    assert got.dtype == np.float64 and got.shape == shape + (257,)
    assert np.array_equal(got, integer_m1.next_probs(qparams, cfg, inputs))


def test_cpu_files_decode_with_the_gpu_twin():
    qparams, cfg = small()
    cpu_model = TransformerModel(qparams, cfg, rule=2, rows=cpu_int.next_probs)
    gpu_model = TransformerModel(qparams, cfg, rule=2, rows=gpu_int.next_probs)
    text = bytes_to_symbols(b"Now is the winter")
    [bits] = cpu_equalinfo.compress_batch([text], cpu_model, 16)
    assert np.array_equal(ref_equalinfo.decompress(bits, gpu_model, 16, n_symbols=len(text)), text)
