"""fast.gpu.exact_m1 (numba.cuda) against ref.exact_m1 bit for bit, and Equal-Info coded with its rows.

Under numba's CUDA simulator (CI without a GPU; tests/conftest.py) the kernels run in Python threads on NumPy
scalars, so these tests check the kernels' order of operations, tiling, tails and indexing; shapes stay small
because the simulator is slow. On a GPU the same tests run the real kernels, which is the check only a GPU can do:
whether NVVM and ptxas keep every rounding (no FMA contraction, IEEE division and sqrt, no flushed denormals).
`test_ptx_has_no_fused_multiply_add` and `test_real_shapes_match_the_cpu_twin` run on a GPU only.
"""
import numpy as np
import pytest
from helpers import m1_inputs, m1_params

from equalinfo.fast.cpu import equalinfo as cpu_equalinfo
from equalinfo.fast.cpu import exact_m1 as cpu_exact
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref import exact_m1 as ref_exact
from equalinfo.ref import transformer as tr
from equalinfo.ref.m1 import TransformerModel
from gpu_support import MODE, gpu_only, needs_kernels, quick_simulator_threads  # noqa: F401

pytestmark = needs_kernels

if MODE is not None:
    from equalinfo.fast.gpu import exact_m1 as gpu_exact


def small(dtype="float32", seed=0, **overrides):
    """A small M1 (258 inputs, 257 outputs) with non-trivial norms and biases, so that every parameter matters.
    Defaults: d 8, 2 heads, 1 layer, ff 12, and 8 buckets up to distance 6 so that T ~ 16 reaches the
    logarithmic buckets and the shared last bucket that real M1 only reaches beyond 128."""
    settings = dict(vocab_in=258, vocab_out=257, d_model=8, n_heads=2, n_layers=1, d_ff=12, num_buckets=8,
                    max_distance=6)
    cfg = tr.Config(**{**settings, "dtype": dtype, **overrides})
    return m1_params(cfg, seed), cfg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 16)])  # 16 > max_distance 6: every bucket
def test_next_probs_bit_identical(dtype, shape):
    params, cfg = small(dtype)
    inputs = m1_inputs(shape)
    got = gpu_exact.next_probs(params, cfg, inputs)
    assert got.dtype == np.float64 and got.shape == shape + (257,)
    assert np.array_equal(got, ref_exact.next_probs(params, cfg, inputs))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pieces_bit_identical(dtype):
    """Each piece alone, so that a failure names the kernel that drifted."""
    params, cfg = small(dtype, d_model=12, n_heads=3, d_ff=10)
    batch, length = 2, 9
    inputs = m1_inputs((batch, length), seed=4)
    x = params["embed"][inputs.reshape(-1)]  # [B*T, d]
    assert np.array_equal(gpu_exact.rms_norm(x, params["final_norm"]), ref_exact.rms_norm(x, params["final_norm"]))
    assert np.array_equal(gpu_exact.attention(x, params, "blocks.0.", cfg, batch, length),
                          ref_exact.attention(x, params, "blocks.0.", cfg, batch, length))
    assert np.array_equal(gpu_exact.mlp(x, params, "blocks.0."), ref_exact.mlp(x, params, "blocks.0."))
    logits = gpu_exact.logits(params, cfg, inputs)
    assert np.array_equal(logits, ref_exact.logits(params, cfg, inputs))
    assert np.array_equal(gpu_exact.softmax64(logits), ref_exact.softmax64(logits))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_rows,n,m", [(1, 1, 1), (7, 13, 11), (5, 16, 9), (9, 4, 17)])
def test_matmul_tiles_and_tails(dtype, n_rows, n, m):
    """Shapes that are and are not multiples of the tiles (TM x TN outputs, TK-deep steps) and of the block."""
    rng = np.random.default_rng(n_rows * 100 + n)
    x, w = rng.normal(size=(n_rows, n)).astype(dtype), rng.normal(size=(n, m)).astype(dtype)
    got = gpu_exact.matmul(x, w)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, ref_exact.matmul(x, w))


def test_exp64_identical():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(30.0, 300), [0.0, -1e-300, -0.5, -699.9, -700.0, -700.1, -np.inf]])
    ours = gpu_exact.exp64(x)
    assert np.array_equal(ours, ref_exact.exp64(x))
    assert ours[-1] == 0.0 and ours[-2] == 0.0 and ours[-3] > 0.0


def test_the_test_model_of_the_cpu_twin():
    """tests/test_exact_m1.py's tiny M1 (d 32, 4 heads, 2 layers, ff 48) and its odd-width variant."""
    from test_exact_m1 import tiny

    for overrides, shape in (({}, (1, 3)), (dict(d_model=24, n_heads=3, d_ff=37), (1, 4))):
        params, cfg = tiny(**overrides)
        inputs = m1_inputs(shape, seed=3)
        assert np.array_equal(gpu_exact.next_probs(params, cfg, inputs), ref_exact.next_probs(params, cfg, inputs))


def test_rows_do_not_depend_on_the_call():
    """Row t of a sequence is the same bits whatever the batch, the length and the other rows."""
    params, cfg = small()
    inputs = m1_inputs((2, 12))
    full = gpu_exact.next_probs(params, cfg, inputs)
    for length in (1, 7):
        assert np.array_equal(gpu_exact.next_probs(params, cfg, inputs[1:2, :length])[0], full[1, :length])
    changed = inputs.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 257
    assert np.array_equal(gpu_exact.next_probs(params, cfg, changed)[:, :6], full[:, :6])


def test_a_wrong_rounding_would_be_seen():
    """The comparison can fail: the same model with one weight moved by one ulp gives other bits."""
    params, cfg = small()
    inputs = m1_inputs((1, 5))
    moved = dict(params)
    moved["unembed"] = params["unembed"].copy()
    moved["unembed"][3, 7] = np.nextafter(moved["unembed"][3, 7], np.float32(np.inf))
    assert not np.array_equal(gpu_exact.next_probs(moved, cfg, inputs), ref_exact.next_probs(params, cfg, inputs))


def test_equalinfo_round_trip_with_gpu_rows():
    """compress_batch with GPU rows gives ref's bits, and decompress_batch with GPU rows gives the text back."""
    params, cfg = small()
    gpu_model = TransformerModel(params, cfg, rows=gpu_exact.next_probs)
    ref_model = TransformerModel(params, cfg)  # ref.exact_m1's rows
    texts = [np.frombuffer(t, dtype=np.uint8) for t in (b"equal info", b"", b"bits")]
    bits = cpu_equalinfo.compress_batch(texts, gpu_model, window_bits=16, lookahead=4)
    for text, got in zip(texts, bits):
        assert np.array_equal(got, ref_equalinfo.compress(text, ref_model, window_bits=16))
    back = cpu_equalinfo.decompress_batch(bits, gpu_model, window_bits=16, n_symbols=[len(t) for t in texts])
    for text, symbols in zip(texts, back):
        assert np.array_equal(np.asarray(symbols), text)


def test_gpu_backend_codes_with_gpu_rows():
    """train.backends.exact_rule(1, 'gpu') is this module (not the CPU's), and fast.gpu's coder
    modules are the CPU coder."""
    from equalinfo.fast.cpu import equalinfo as cpu_eq
    from equalinfo.fast.gpu import ac as gpu_ac
    from equalinfo.fast.gpu import equalinfo as gpu_eq
    from equalinfo.train.backends import exact_rule

    assert exact_rule(1, "gpu").next_probs is gpu_exact.next_probs
    assert gpu_eq.compress_batch is cpu_eq.compress_batch and gpu_eq.decompress_batch is cpu_eq.decompress_batch
    assert gpu_ac.__all__


# ----------------------------------------------------------------------------------------------------------------------
# GPU only
# ----------------------------------------------------------------------------------------------------------------------


@gpu_only
def test_ptx_has_no_fused_multiply_add():
    """Every compiled kernel's PTX is free of fma: NVVM did not contract a multiply and an add (module docstring)."""
    params, cfg = small()
    gpu_exact.next_probs(params, cfg, m1_inputs((2, 5)))  # compiles the float32 kernels
    gpu_exact.exp64(np.array([-1.0]))  # and the float64 exp64
    checked = 0
    for dtype_name in ("float32", "float64"):
        for name, kernel in gpu_exact._kernels(dtype_name).items():
            for signature, ptx in kernel.inspect_asm().items():
                assert "fma." not in ptx, f"{dtype_name} {name} {signature}: FMA in the PTX"
                checked += 1
    assert checked >= 8


@gpu_only
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_real_shapes_match_the_cpu_twin(dtype):
    """M1 "3m" with real launch shapes (64 x 64 tiles, 128-thread blocks) against fast.cpu's twin."""
    from equalinfo.train.m1 import make_config

    cfg = make_config("3m", dtype=dtype)
    params = tr.init_params(cfg, 0)
    inputs = m1_inputs((48, 150), seed=5)  # 150 > max_distance: every bucket
    assert np.array_equal(gpu_exact.next_probs(params, cfg, inputs), cpu_exact.next_probs(params, cfg, inputs))
