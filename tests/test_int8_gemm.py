"""Rule 3's GEMM paths (fast/cpu/int8_gemm.py): onnxruntime's integer GEMM and OpenBLAS's sgemm give the same bits
(rows, the key/value-cached grower, extreme operands, files made with one decoded with the other); the self-check
rejects a GEMM that saturates like MLAS's non-VNNI kernels, and auto then falls back to sgemm; a forced path that
cannot run is one clear error. Tests that need onnxruntime skip without it; the guard's tests use fake GEMMs."""
import numpy as np
import pytest
from helpers import fails_cli, m1_inputs
from test_integer_m1 import small

from equalinfo.fast.cpu import int8_gemm
from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.ref import int8_m1
from equalinfo.ref import transformer as tr
from equalinfo.train import checkpoint

ZERO = int8_gemm.ZERO_POINT


@pytest.fixture(autouse=True)
def fresh_state():
    """Each test loads (or fakes) the runner afresh and leaves no fake behind."""
    int8_gemm.reset()
    yield
    int8_gemm.reset()


def exact_runner(rows, weights, keep=True):
    """An integer GEMM that is right: (u8 - 128) @ s8 in int64, returned as int32."""
    return ((rows.astype(np.int64) - ZERO) @ weights.astype(np.int64)).astype(np.int32)


def saturating_runner(rows, weights, keep=True):
    """What MLAS's u8 x s8 kernels compute without VNNI (vpmaddubsw): adjacent pairs of u8 * s8 products added with
    int16 saturation, the pairs then summed in int32, the zero point's 128 * column sums subtracted."""
    a, b = rows.astype(np.int64), weights.astype(np.int64)
    if a.shape[1] % 2:
        a, b = np.pad(a, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0)))
    products = a[:, :, None] * b[None, :, :]  # [R, K, m]
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -32768, 32767)
    return (pairs.sum(axis=1) - ZERO * b.sum(axis=0)).astype(np.int32)


def use_runner(monkeypatch, runner):
    """onnxruntime's runner replaced by `runner`, and the VNNI kernel out of the way (auto would prefer it where
    the CPU has one: tests/test_vnni_gemm.py tests that path)."""
    monkeypatch.setattr(int8_gemm, "_session_runner", lambda: runner)
    monkeypatch.setattr(int8_gemm, "vnni_usable", lambda k: False)


def rows_with(monkeypatch, path, function, *args, **kwargs):
    """function(*args, **kwargs) with EQUALINFO_INT8_GEMM=path."""
    monkeypatch.setenv(int8_gemm.ENV, path)
    try:
        return function(*args, **kwargs)
    finally:
        monkeypatch.delenv(int8_gemm.ENV)


def counting(monkeypatch):
    """Count the onnxruntime path's GEMM calls (so a test knows the path it claims to test ran)."""
    calls = []
    original = int8_gemm.OnnxRuntime.products

    def products(rows, weights_f32, weights_i8):
        calls.append(rows.shape)
        return original(rows, weights_f32, weights_i8)

    monkeypatch.setattr(int8_gemm.OnnxRuntime, "products", staticmethod(products))
    return calls


# ----------------------------------------------------------------------------------- the guard (no onnxruntime needed)


def test_the_saturating_fake_is_wrong_on_extreme_operands_and_right_on_small_ones():
    """The fake below is a faithful failure: right where pairs fit int16, wrong at the self-check's operands."""
    rows, weights = int8_gemm.extreme_operands(1024)
    want = (rows.astype(np.int64) - ZERO) @ weights.astype(np.int64)
    assert not np.array_equal(saturating_runner(rows, weights), want)
    assert np.array_equal(exact_runner(rows, weights), want)
    small_rows = np.random.default_rng(0).integers(ZERO - 20, ZERO + 20, (4, 64)).astype(np.uint8)
    small_weights = np.random.default_rng(1).integers(-60, 61, (64, 3)).astype(np.int8)
    assert np.array_equal(saturating_runner(small_rows, small_weights), exact_runner(small_rows, small_weights))


def test_self_check_rejects_a_saturating_gemm_and_auto_falls_back_to_sgemm(monkeypatch):
    use_runner(monkeypatch, saturating_runner)
    assert not int8_gemm.usable(256)
    assert int8_gemm.choose(4096, 256, 768) is int8_gemm.SGEMM  # auto, a product far above the threshold
    monkeypatch.setenv(int8_gemm.ENV, "onnxruntime")
    with pytest.raises(int8_gemm.GemmUnavailable, match="wrong integers on extreme int8 operands.*sgemm"):
        int8_gemm.choose(4096, 256, 768)
    params, cfg = small(d_model=64, d_ff=96)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((20, 9))
    with pytest.raises(ValueError, match="EQUALINFO_INT8_GEMM=onnxruntime"):
        cpu_int8.next_probs(qparams, cfg, inputs)
    monkeypatch.setenv(int8_gemm.ENV, "auto")
    assert np.array_equal(cpu_int8.next_probs(qparams, cfg, inputs), int8_m1.next_probs(qparams, cfg, inputs))


def test_an_exact_gemm_passes_and_auto_takes_it_above_the_threshold(monkeypatch):
    """With a right integer GEMM the guard lets it in (so the check is not vacuous), only for large products, and
    the rows are rule 3's bits."""
    use_runner(monkeypatch, exact_runner)
    calls = counting(monkeypatch)
    assert int8_gemm.usable(1024) and int8_gemm.usable(37)
    assert set(int8_gemm._STATE["checked"]) == {int8_gemm.SELF_CHECK_K, 1024, 37}
    assert int8_gemm.choose(2, 256, 255) is int8_gemm.SGEMM  # below 2^17 multiply-adds: below the threshold
    assert int8_gemm.choose(2, 256, 256) is int8_gemm.ONNXRUNTIME  # 2^17: 3m's smallest product at one row
    params, cfg = small(d_model=64, d_ff=96)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((40, 12))  # 480 rows: 960 x 64 x 64 > 2^17 for wo
    assert np.array_equal(cpu_int8.next_probs(qparams, cfg, inputs), int8_m1.next_probs(qparams, cfg, inputs))
    assert calls and all(rows[0] == 2 * 480 for rows in calls)


def test_a_missing_onnxruntime_falls_back_or_is_one_clear_error(monkeypatch, capsys, tmp_path):
    def missing():
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(int8_gemm, "_session_runner", missing)
    monkeypatch.setattr(int8_gemm, "vnni_usable", lambda k: False)
    assert int8_gemm.choose(4096, 256, 768) is int8_gemm.SGEMM
    monkeypatch.setenv(int8_gemm.ENV, "onnxruntime")
    with pytest.raises(int8_gemm.GemmUnavailable, match="onnxruntime is not usable .*No module named.*int8"):
        int8_gemm.choose(2, 8, 8)
    path, text = tiny_m1(tmp_path), tmp_path / "in.txt"
    text.write_bytes(b"some text to code " * 4)
    fails_cli(capsys, "compress", text, tmp_path / "o.eqi", "--model", path, "--m1-rule", "3", "--backend", "cpu",
              says="EQUALINFO_INT8_GEMM=onnxruntime, but onnxruntime is not usable")
    monkeypatch.setenv(int8_gemm.ENV, "blas")
    fails_cli(capsys, "compress", text, tmp_path / "o.eqi", "--model", path, "--m1-rule", "3", "--backend", "cpu",
              says="EQUALINFO_INT8_GEMM='blas': expected one of sgemm, onnxruntime, vnni, auto")


def test_the_docstring_bound_holds_for_every_size():
    """The u8 form's sums (at most min(n, 1040) terms of 255 * 127) stay inside int32 at every size's widest
    product, and the module's docstring states each size's figure."""
    doc = " ".join(int8_gemm.__doc__.split())
    for size, shape in tr.SIZES.items():
        k = min(max(shape["d_model"], shape["d_ff"]), int8_m1.CHUNK)
        bound = k * 255 * 127
        assert bound <= int8_gemm.INT32_MAX and size in doc and f"{k} ({bound:,})" in doc, (size, k, bound)


# ------------------------------------------------------------------------------------------------- onnxruntime itself


@pytest.fixture
def ort():
    pytest.importorskip("onnxruntime")
    if not int8_gemm.usable(int8_m1.CHUNK):
        pytest.skip(f"onnxruntime fails the self-check here: {int8_gemm._why_not()}")


@pytest.mark.parametrize("n", [1024, 1040, 2100])  # 3m's w_down; the largest chunk; three chunks
def test_extreme_operands_give_the_exact_integers_on_both_paths(ort, monkeypatch, n):
    rng = np.random.default_rng(n)
    w_int = np.stack([np.full(n, 127), np.full(n, -127), rng.choice([-127, 127], n),
                      np.where(np.arange(n) % 2, 127, -127)], axis=1).astype(np.int8)
    qparams = {"w.int": w_int, "w.scale": np.ones(4)}
    x = np.stack([np.full(n, 16383.0), -np.full(n, 16383.0), rng.choice([-16383.0, 16383.0], n),
                  rng.integers(-16383, 16384, n).astype(np.float64), np.full(n, 129.0), np.full(n, -127.0)])
    x = np.concatenate([x] * 3).astype(np.float32)  # 18 rows; the first four have e = 0, so x_int = x
    calls = counting(monkeypatch)
    got = {path: rows_with(monkeypatch, path, cpu_int8.int8_matmul, x, qparams, "w")
           for path in ("sgemm", "onnxruntime")}
    assert len(calls) == int8_m1.n_chunks(n)
    assert np.array_equal(got["onnxruntime"], got["sgemm"])
    assert np.array_equal(got["sgemm"], int8_m1.int8_matmul(x, qparams, "w"))
    exact = x[:4].astype(np.int64) @ w_int.astype(np.int64)  # the extremes, |acc| = n * 16383 * 127 reached
    assert np.abs(exact).max() == int8_m1.accumulation_bound(n)
    assert np.array_equal(got["onnxruntime"][:4], exact.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trained_like", [False, True])
def test_rows_and_prefix_rows_are_the_same_bits_on_both_paths(ort, monkeypatch, dtype, trained_like):
    params, cfg = small(dtype, trained_like=trained_like)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((5, 17), seed=3)
    want = int8_m1.next_probs(qparams, cfg, inputs)
    calls = counting(monkeypatch)
    assert np.array_equal(rows_with(monkeypatch, "onnxruntime", cpu_int8.next_probs, qparams, cfg, inputs), want)
    assert np.array_equal(rows_with(monkeypatch, "sgemm", cpu_int8.next_probs, qparams, cfg, inputs), want)
    for path in ("onnxruntime", "sgemm"):
        grower = cpu_int8.PrefixRows(qparams, cfg, n_slots=6, capacity=4)
        steps = [rows_with(monkeypatch, path, grower.extend, [4, 0, 5, 1, 2], inputs[:, t]) for t in range(17)]
        assert np.array_equal(np.stack(steps, axis=1), want)
    assert len(calls) == (4 * cfg.n_layers + 1) * (1 + 17)  # 9 products: next_probs once, the grower 17 times


CFG = tr.Config(vocab_in=258, vocab_out=257, d_model=32, n_heads=4, n_layers=2, d_ff=48)


def tiny_m1(tmp_path):
    path = tmp_path / "m1.npz"
    checkpoint.save(path, tr.init_params(CFG, 0), CFG, meta={"step": 0, "role": "m1", "seq_len": 16})
    return path


@pytest.mark.parametrize("method", ["ac", "equalinfo"])
def test_files_made_with_either_path_decode_with_the_other(ort, monkeypatch, tmp_path, method):
    import equalinfo

    model = equalinfo.load_m1(tiny_m1(tmp_path), rule=3, backend="cpu")
    text = b"It was the best of times, it was the worst of times; \xe2\x80\x94 Dickens\n" * 3
    calls = counting(monkeypatch)
    blobs = {path: rows_with(monkeypatch, path, equalinfo.compress, text, model, method, store=False)
             for path in ("onnxruntime", "sgemm")}
    assert calls and blobs["onnxruntime"] == blobs["sgemm"]
    for made, reads in (("onnxruntime", "sgemm"), ("sgemm", "onnxruntime")):
        assert rows_with(monkeypatch, reads, equalinfo.decompress, blobs[made], model) == text


def test_the_weight_cache_sees_an_array_replaced_in_the_same_dict():
    """side_by_side's fast path (keyed by the dict and the names) still notices a weight swapped for another."""
    rng = np.random.default_rng(3)
    qparams = {}
    for name in ("a", "b"):
        qparams[name + ".int"], qparams[name + ".scale"] = int8_m1.quantize_weight(rng.normal(size=(40, 6)))
    x = rng.normal(size=(3, 40)).astype(np.float32)
    first = cpu_int8.int8_products(x, qparams, ["a", "b"])
    assert np.array_equal(first[1], int8_m1.int8_matmul(x, qparams, "b"))
    qparams["b.int"], qparams["b.scale"] = int8_m1.quantize_weight(rng.normal(size=(40, 6)))
    again = cpu_int8.int8_products(x, qparams, ["a", "b"])
    assert np.array_equal(again[0], first[0]) and not np.array_equal(again[1], first[1])
    assert np.array_equal(again[1], int8_m1.int8_matmul(x, qparams, "b"))


def test_onnxruntime_on_one_or_two_threads_gives_the_same_rows(ort, monkeypatch):
    """One session per thread count (fast.cpu.threads.set_threads): rows large enough to split, the same bits."""
    from equalinfo.fast.cpu.threads import set_threads

    params, cfg = small(d_model=64, d_ff=128)
    qparams = int8_m1.quantize_params(params, cfg)
    inputs = m1_inputs((32, 24), seed=5)
    results = []
    for threads in (1, 2):
        try:
            set_threads(threads)
        except ValueError:
            pytest.skip("one core: no second thread count to compare")
        results.append(rows_with(monkeypatch, "onnxruntime", cpu_int8.next_probs, qparams, cfg, inputs))
    set_threads(2)
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[0][:2], int8_m1.next_probs(qparams, cfg, inputs[:2]))


@pytest.mark.parametrize("rows", [5, 6, 7, 13])
def test_rows_past_rows_per_run_are_cut_into_calls_with_the_same_integers(ort, monkeypatch, rows):
    """A call of more rows than ROWS_PER_RUN (which bounds the memory each session's arena keeps) is run in blocks:
    the blocks, the last one partial, put together give the exact product."""
    monkeypatch.setattr(int8_gemm, "ROWS_PER_RUN", 3)
    halves, weights = int8_gemm.extreme_operands(int8_m1.CHUNK)
    a = np.ascontiguousarray(np.tile(halves, (2, 1))[:rows])
    got = int8_gemm._load_runner()(a, weights)
    assert got.shape == (rows, weights.shape[1])
    assert np.array_equal(got.astype(np.int64), (a.astype(np.int64) - int8_gemm.ZERO_POINT) @ weights.astype(np.int64))
