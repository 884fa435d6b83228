"""fast/cpu's twin of exact rule 4 (fast/cpu/int8_rows_m1.py): the same bits as ref/int8_rows_m1.py through either
GEMM (sgemm, onnxruntime's integer GEMM), side by side or alone, in next_probs and in the key/value-cached grower
(whose caches must hold the bfloat16-rounded keys and values), and files coded by it decode with ref."""
import numpy as np
import pytest
from helpers import assert_cpu_windows_are_refs, m1_inputs
from test_int8_gemm import rows_with
from test_integer_m1 import small

from equalinfo.fast.cpu import ac as fast_ac
from equalinfo.fast.cpu import int8_gemm
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu import int8_rows_m1 as cpu_rows
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.ref import ac, int8_m1, int8_rows_m1
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import BOS

PATHS = ["sgemm"] + (["onnxruntime"] if int8_gemm.usable(16) else [])


@pytest.fixture(scope="module")
def model32():
    params, cfg = small()
    return int8_m1.quantize_params(params, cfg), cfg


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (20, 9)])  # 20 rows > the kernels' 16-row blocks
def test_cpu_rows_equal_ref_rows(monkeypatch, path, dtype, shape):
    params, cfg = small(dtype, trained_like=True)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs(shape)
    want = int8_rows_m1.next_probs(qparams, cfg, inputs)
    assert np.array_equal(rows_with(monkeypatch, path, cpu_rows.next_probs, qparams, cfg, inputs), want)
    assert not np.array_equal(want, int8_m1.next_probs(qparams, cfg, inputs))  # rule 4 is not rule 3


def test_cpu_rows_equal_ref_rows_with_several_chunks():
    """d_ff = 2,100: w_down's products run over three K-chunks (the cpu path that adds chunks up)."""
    params, cfg = small(d_ff=2100, n_layers=1)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((2, 9), seed=4)
    assert np.array_equal(cpu_rows.next_probs(qparams, cfg, inputs), int8_rows_m1.next_probs(qparams, cfg, inputs))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n", [40, 2100])  # one K-chunk, and three
def test_products_side_by_side_equal_refs_one_at_a_time(monkeypatch, path, n):
    """One quantizing pass and one GEMM against q, k, v side by side: each product's bits are ref's, k and v
    rounded to bfloat16 and q not, with extreme rows (every value at the clip, zero rows) and weights."""
    rng = np.random.default_rng(11)
    qparams = {}
    names = ["blocks.0.wq", "blocks.0.wk", "blocks.0.wv"]
    for name in names:
        qparams[name + ".int"], qparams[name + ".scale"] = int8_m1.quantize_weight(rng.standard_t(3, (n, 6)))
    qparams[names[1] + ".int"][:, 0] = int8_m1.WEIGHT_MAX  # a column of extreme weights
    x = (rng.normal(size=(6, n)) * 10.0 ** rng.integers(-3, 3, size=(6, 1))).astype(np.float32)
    x[0] = np.float32(3.0)  # every value quantizes to the largest integer
    x[1] = 0
    got = rows_with(monkeypatch, path, cpu_rows.int8_rows_products, x, qparams, names)
    for name, y in zip(names, got):
        assert y.flags.c_contiguous and np.array_equal(y, int8_rows_m1.int8_rows_matmul(x, qparams, name))
    low_bits = [np.any(y.view(np.uint32) & 0xFFFF) for y in got]
    assert low_bits == [True, False, False]  # only keys and values are bfloat16


def test_quantize_rows_are_refs_in_both_gemm_forms():
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(7, 33)) * 10.0 ** rng.integers(-20, 20, size=(7, 1))).astype(np.float32)
    x[0] = -0.0
    x[1, :] = 1.0  # the max scales to 64 exactly
    x[2, :] = np.float32(1.9999999)  # rint(127.99...) = 128: clipped to 127
    x_int, e = int8_rows_m1.quantize_rows(x)
    got_int, got_e = cpu_rows.quantize_rows(x)
    assert np.array_equal(got_int, x_int) and np.array_equal(got_e, e)
    assert np.abs(x_int).max() == 127 and np.all(x_int[2] == 127)
    both, got_e = cpu_int8.quantize_split(x, int8_gemm.ONNXRUNTIME, cpu_rows.RULE)
    assert both.dtype == np.uint8 and np.array_equal(both.astype(np.float64) - 128, x_int)


@pytest.mark.parametrize("restart_every", [None, 5])
def test_the_grower_gives_next_probs_rows_and_caches_bfloat16_keys(model32, restart_every):
    """The decoders' grower (one input per slot and step) and the lockstep encoder's (several inputs per slot,
    slots repeating) give ref's rows while caching keys and values in 2 bytes (their bfloat16 bits): exact only
    because the rule rounded them to bfloat16 (the rows would differ otherwise)."""
    qparams, cfg = model32
    model = TransformerModel(qparams, cfg, rows=cpu_rows.next_probs, rule=4, restart_every=restart_every)
    ref_model = TransformerModel(qparams, cfg, rule=4, restart_every=restart_every)
    inputs = m1_inputs((3, 12), seed=8)
    inputs[:, 0] = BOS  # a slot's first input is BOS, as every coder starts it
    grower = prefix_rows(model, 3)
    steps = np.stack([grower.extend(np.arange(3), inputs[:, t]) for t in range(inputs.shape[1])], axis=1)
    assert np.array_equal(steps, ref_model.next_probs(inputs))
    cache = getattr(grower, "grower", grower)  # under RestartingRows
    for layer in range(cfg.n_layers):  # a float32 M1's keys and values are cached as bfloat16 bits: 2 bytes each
        assert cache.keys[layer].dtype == cache.values[layer].dtype == np.uint16
    lockstep = prefix_rows(model, 3)  # all of a slot's inputs in one call, slots interleaved
    slots = np.repeat(np.arange(3), inputs.shape[1])
    together = lockstep.extend(slots, inputs.reshape(-1)).reshape(3, inputs.shape[1], -1)
    assert np.array_equal(together, steps)


def test_files_made_with_cpu_decode_with_ref(model32):
    """Equal-Info windows and plain AC coded by fast.cpu under rule 4 are ref's bits and decode with ref."""
    qparams, cfg = model32
    ref_model = TransformerModel(qparams, cfg, rule=4)
    cpu_model = TransformerModel(qparams, cfg, rule=4, rows=cpu_rows.next_probs)
    assert isinstance(prefix_rows(cpu_model, 2), cpu_rows.PrefixRows)
    texts = assert_cpu_windows_are_refs(cpu_model, ref_model)
    text = texts[0]
    coded = fast_ac.compress(text, cpu_model)
    assert np.array_equal(coded, ac.compress(text, ref_model))
    assert np.array_equal(fast_ac.decompress(coded, cpu_model, len(text)), text)
