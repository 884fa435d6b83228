"""The compiled AVX-512 VNNI GEMM (fast/cpu/vnni_gemm.py) and its place among rule 3/4's GEMM paths
(fast/cpu/int8_gemm.py): exact integers at the extreme operands for every tile shape, the same rows and files as
sgemm (and as ref), a wrong kernel rejected by the self-check, and a CPU without VNNI served by the other paths
with the same bits. Tests that run the kernel skip on a CPU without AVX-512 VNNI."""
import numpy as np
import pytest
from helpers import m1_inputs
from test_integer_m1 import small

from equalinfo.fast.cpu import int8_gemm, int8_step, vnni_gemm
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu import int8_rows_m1 as cpu_rows
from equalinfo.ref import int8_m1, int8_rows_m1

needs_vnni = pytest.mark.skipif(vnni_gemm.compiled() is None, reason="no AVX-512 VNNI on this CPU")
ZERO = vnni_gemm.ZERO_POINT


@pytest.fixture(autouse=True)
def fresh_state():
    int8_gemm.reset()
    yield
    int8_gemm.reset()


def exact(rows, weights):
    """(u8 - 128) @ s8 in int64: what every path must return."""
    return (rows.astype(np.int64) - ZERO) @ weights.astype(np.int64)


@needs_vnni
@pytest.mark.parametrize("k", [4, 256, 1024, 1040])
@pytest.mark.parametrize("n_rows", [0, 1, 2, 3, 5, 6, 7, 13, 26])  # one tile of 1-6 rows, and several
def test_the_kernel_gives_the_exact_integers_at_the_extremes(k, n_rows):
    """Halves +-127 against weights +-127 (the largest sums, K * 255 * 127 in the u8 form), random ones, and widths
    that leave a column tile part-full (65, 257): every row and column equals the int64 product."""
    rows, weights = int8_gemm.extreme_operands(k)  # [8, k] u8, [k, 8] s8
    rng = np.random.default_rng(k + n_rows)
    rows = np.concatenate([rows] * 4)[:n_rows]
    weights = np.concatenate([weights, rng.integers(-127, 128, (k, 257)).astype(np.int8)], axis=1)  # [k, 265]
    for m in (1, 64, 65, 265):
        got = vnni_gemm.products(rows, weights[:, :m].copy())
        assert got.shape == (n_rows, m) and got.dtype == np.int32
        assert np.array_equal(got.astype(np.int64), exact(rows, weights[:, :m]))


@needs_vnni
def test_the_packing_and_the_checks_refuse_what_the_kernel_cannot_take():
    with pytest.raises(ValueError, match="multiple of 4"):
        vnni_gemm.PackedWeights(np.zeros((6, 8), dtype=np.int8))
    with pytest.raises(ValueError, match="int8 weights"):
        vnni_gemm.PackedWeights(np.zeros((8, 8), dtype=np.int16))
    packed = vnni_gemm.PackedWeights(np.ones((8, 8), dtype=np.int8))
    with pytest.raises(ValueError, match="uint8 rows of 8"):
        vnni_gemm.products(np.ones((2, 12), dtype=np.uint8), packed)
    out = np.empty((2, 32), dtype=np.int32)  # narrower than a column tile: the kernel would write past it
    with pytest.raises(ValueError, match="wrong shape or layout"):
        vnni_gemm.gemm_into(vnni_gemm.address(), np.ones((2, 8), dtype=np.uint8), packed.packed, packed.corr, out)


def run_with(monkeypatch, path, function, *args, **kwargs):
    monkeypatch.setenv(int8_gemm.ENV, path)
    try:
        return function(*args, **kwargs)
    finally:
        monkeypatch.delenv(int8_gemm.ENV)


@needs_vnni
@pytest.mark.parametrize("rule", [3, 4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_and_prefix_rows_are_the_same_bits_as_sgemm_and_ref(monkeypatch, rule, dtype):
    """Whole prefixes and the key/value-cached grower (its fused quantize-GEMM-rescale call), several slots at
    once and one at a time, by rule 3 (two halves per row) and rule 4 (one, bfloat16 keys and values)."""
    ref_rule, fast_rule = (int8_m1, cpu_int8) if rule == 3 else (int8_rows_m1, cpu_rows)
    params, cfg = small(dtype, trained_like=True, d_model=32, d_ff=48)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((5, 17), seed=rule)
    want = ref_rule.next_probs(qparams, cfg, inputs)
    calls = []
    original = cpu_int8.Products._vnni_call

    def counted(self, x, parts):
        calls.append(x.shape)
        return original(self, x, parts)

    monkeypatch.setattr(cpu_int8.Products, "_vnni_call", counted)
    assert np.array_equal(run_with(monkeypatch, "vnni", fast_rule.next_probs, qparams, cfg, inputs), want)
    for slots in ([4, 0, 5, 1, 2], [3]):
        grower = fast_rule.PrefixRows(qparams, cfg, n_slots=6, capacity=4)
        steps = [run_with(monkeypatch, "vnni", grower.extend, slots, inputs[:len(slots), t]) for t in range(17)]
        assert np.array_equal(np.stack(steps, axis=1), want[:len(slots)])
    assert len(calls) == (4 * cfg.n_layers + 1) * (1 + 17 + 17)  # every product went through the kernel


@needs_vnni
@pytest.mark.parametrize("method", ["ac", "equalinfo"])
def test_files_made_with_the_kernel_decode_without_it_and_the_reverse(monkeypatch, tmp_path, method):
    import equalinfo
    from test_int8_gemm import tiny_m1

    model = equalinfo.load_m1(tiny_m1(tmp_path), rule=4 if method == "ac" else 3, backend="cpu")
    text = "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\n".encode() * 3
    blobs = {path: run_with(monkeypatch, path, equalinfo.compress, text, model, method, store=False)
             for path in ("vnni", "sgemm")}
    assert blobs["vnni"] == blobs["sgemm"]
    for made, reads in (("vnni", "sgemm"), ("sgemm", "vnni")):
        assert run_with(monkeypatch, reads, equalinfo.decompress, blobs[made], model) == text


def unpacked(packed):
    """W [K, m] back from a PackedWeights ([tiles, K/4, 64, 4] -> [K/4, 4, tiles, 64] -> [K, tiles * 64])."""
    tiles, groups = packed.packed.shape[:2]
    return packed.packed.transpose(1, 3, 0, 2).reshape(4 * groups, tiles * 64)[:, :packed.m]


def saturating_kernel(rows, packed):
    """A wrong kernel: adjacent u8 * s8 pairs added with int16 saturation (what non-VNNI byte kernels do)."""
    a, b = rows.astype(np.int64), unpacked(packed).astype(np.int64)
    products = a[:, :, None] * b[None, :, :]  # [R, K, m]
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -32768, 32767)
    return (pairs.sum(axis=1) - ZERO * b.sum(axis=0)).astype(np.int32)


def test_the_packing_keeps_every_weight():
    weights = np.random.default_rng(0).integers(-127, 128, (12, 70)).astype(np.int8)
    packed = vnni_gemm.PackedWeights(weights)
    assert np.array_equal(unpacked(packed), weights)
    assert np.array_equal(packed.corr[:70], ZERO * weights.astype(np.int64).sum(axis=0)) and not packed.corr[70:].any()


def test_a_wrong_kernel_fails_the_self_check_and_auto_goes_elsewhere(monkeypatch):
    monkeypatch.setattr(vnni_gemm, "compiled", lambda: object())  # "there is a kernel" ...
    monkeypatch.setattr(vnni_gemm, "products", saturating_kernel)  # ... but a wrong one
    assert not int8_gemm.vnni_usable(256)
    assert int8_gemm.choose(26, 256, 768) is not int8_gemm.VNNI
    monkeypatch.setenv(int8_gemm.ENV, "vnni")
    with pytest.raises(int8_gemm.GemmUnavailable, match="no usable AVX-512 VNNI kernel"):
        int8_gemm.choose(26, 256, 768)


def test_a_cpu_without_vnni_gets_the_same_rows_from_the_other_paths(monkeypatch):
    """No VNNI (features as LLVM reports them): no kernel is compiled, auto picks onnxruntime or sgemm, a forced
    vnni is one clear error, and the rows are ref's."""
    monkeypatch.setattr(vnni_gemm, "host_has_vnni", lambda: False)
    vnni_gemm.compiled.cache_clear()
    try:
        assert vnni_gemm.compiled() is None and not int8_gemm.vnni_usable(256)
        assert int8_gemm.choose(26, 256, 768) in (int8_gemm.ONNXRUNTIME, int8_gemm.SGEMM)
        params, cfg = small(d_model=64, d_ff=96)
        qparams = int8_m1.quantize_params(params, cfg)
        inputs = m1_inputs((40, 12))  # 480 rows: above the threshold, so auto asks for an integer GEMM
        assert np.array_equal(cpu_int8.next_probs(qparams, cfg, inputs), int8_m1.next_probs(qparams, cfg, inputs))
        monkeypatch.setenv(int8_gemm.ENV, "vnni")
        with pytest.raises(int8_gemm.GemmUnavailable, match="EQUALINFO_INT8_GEMM=vnni"):
            cpu_int8.next_probs(qparams, cfg, inputs)
    finally:
        vnni_gemm.compiled.cache_clear()


@needs_vnni
@pytest.mark.parametrize("rule", [3, 4])
def test_the_fused_step_gives_the_growers_rows(monkeypatch, rule):
    """fast/cpu/int8_step.py: on one thread with every product on the kernel, a step is one compiled call; its rows
    are ref's, through cache growth (capacity 4) and a slot given several inputs in one call (an encoder's
    lookahead), and it is not taken on two threads or for a float64 M1."""
    from equalinfo.fast.cpu.threads import set_threads

    ref_rule, grower_class = (int8_m1, int8_step.Rule3Rows) if rule == 3 else (int8_rows_m1, int8_step.Rule4Rows)
    params, cfg = small("float32", trained_like=True, d_model=32, d_ff=48)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((3, 13), seed=rule)
    want = ref_rule.next_probs(qparams, cfg, inputs)  # [3, 13, V]
    fused = []
    original = int8_step.extend
    monkeypatch.setattr(int8_step, "extend", lambda *args: fused.append(1) or original(*args))
    monkeypatch.setenv(int8_gemm.ENV, "vnni")
    import numba
    threads = numba.get_num_threads()
    set_threads(1)
    try:
        grower = grower_class(qparams, cfg, n_slots=3, capacity=4)
        got = [[], [], []]  # each slot's rows in order
        for call in range(4):  # slot 1 takes three inputs per call, in order; slots 0 and 2 one each
            slots = [0, 1, 1, 1, 2]
            taken = [call, 3 * call, 3 * call + 1, 3 * call + 2, call]
            rows = grower.extend(slots, [inputs[s, t] for s, t in zip(slots, taken)])
            for slot, row in zip(slots, rows):
                got[slot].append(row)
        assert len(fused) == 4
    finally:
        set_threads(threads)
    for slot in range(3):
        assert np.array_equal(np.stack(got[slot]), want[slot, :len(got[slot])])
    if numba.get_num_threads() > 1:  # more threads: the general path (attention may use them)
        grower.extend([0], [5])
        assert len(fused) == 4
    params64, _ = small("float64", d_model=32, d_ff=48)
    assert int8_step.fused_step(grower_class(int8_m1.quantize_params(params64, cfg), cfg, 1)) is None


@needs_vnni
@pytest.mark.parametrize("n", [2100, 2102])  # three K-chunks (the last of 20 terms); a width the kernel cannot take
def test_products_over_several_chunks(monkeypatch, n):
    """Rule 3's chunks of 1,040 terms each go through the kernel and are added up exactly (int8_m1's general path);
    a width that is not a multiple of 4 is refused by name when forced and goes to another path under auto."""
    rng = np.random.default_rng(n)
    w_int = np.concatenate([np.full((n, 1), 127), np.full((n, 1), -127), rng.integers(-127, 128, (n, 6))],
                           axis=1).astype(np.int8)
    qparams = {"w.int": w_int, "w.scale": np.ones(8)}
    x = np.concatenate([np.full((1, n), 16383.0), np.full((1, n), -16383.0),
                        rng.integers(-16383, 16384, (16, n)).astype(np.float64)]).astype(np.float32)
    want = int8_m1.int8_matmul(x, qparams, "w")
    assert np.array_equal(run_with(monkeypatch, "sgemm", cpu_int8.int8_matmul, x, qparams, "w"), want)
    if n % 4:
        with pytest.raises(int8_gemm.GemmUnavailable, match="multiple of 4"):
            run_with(monkeypatch, "vnni", cpu_int8.int8_matmul, x, qparams, "w")
        assert int8_gemm.choose(36, n, 8) is not int8_gemm.VNNI
        return
    assert np.array_equal(run_with(monkeypatch, "vnni", cpu_int8.int8_matmul, x, qparams, "w"), want)
    assert np.abs(x[:2].astype(np.int64) @ w_int[:, :2].astype(np.int64)).max() == int8_m1.accumulation_bound(n)
