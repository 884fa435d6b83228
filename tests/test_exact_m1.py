"""The exact M1 arithmetic (ref/exact_m1.py) and its Numba twin: the same bits, rows independent of the call's shape,
and values close to the ordinary forward pass (it is the same model, only with fixed rounding orders)."""
import math

import mpmath
import numpy as np
import pytest
from helpers import m1_inputs, m1_params

from equalinfo.fast.cpu import exact_m1 as fast_exact
from equalinfo.ref import exact_m1 as ref_exact
from equalinfo.ref import transformer as tr

SHAPES = [(1, 1), (3, 17), (2, 150)]  # 150 > max_distance 128: the log-bucket range and the shared last bucket


def tiny(dtype="float32", seed=0, **overrides):
    cfg = tr.Config(**{**dict(vocab_in=258, vocab_out=257, d_model=32, n_heads=4, n_layers=2, d_ff=48),
                       "dtype": dtype, **overrides})
    return m1_params(cfg, seed), cfg


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_twin_is_bit_identical(dtype, shape):
    params, cfg = tiny(dtype)
    inputs = m1_inputs(shape)
    expected = ref_exact.next_probs(params, cfg, inputs)
    got = fast_exact.next_probs(params, cfg, inputs)
    assert got.dtype == np.float64 and got.shape == shape + (257,)
    assert np.array_equal(got, expected)
    # the pieces too, so that a failure points at the layer that drifted
    x = params["embed"][inputs.reshape(-1)]
    assert np.array_equal(fast_exact.rms_norm(x, params["final_norm"]), ref_exact.rms_norm(x, params["final_norm"]))
    assert np.array_equal(fast_exact.matmul(x, params["unembed"]), ref_exact.matmul(x, params["unembed"]))
    assert np.array_equal(fast_exact.attention(x, params, "blocks.0.", cfg, *shape),
                          ref_exact.attention(x, params, "blocks.0.", cfg, *shape))


def test_fast_twin_with_odd_widths():
    """Widths that are not multiples of a SIMD vector or of the row block exercise the loops' tails."""
    params, cfg = tiny(d_model=24, n_heads=3, d_ff=37)
    inputs = m1_inputs((5, 13), seed=3)
    assert np.array_equal(fast_exact.next_probs(params, cfg, inputs), ref_exact.next_probs(params, cfg, inputs))


@pytest.mark.parametrize("backend", [ref_exact, fast_exact], ids=["ref", "fast"])
def test_rows_do_not_depend_on_the_call(backend):
    """Row t of a sequence is the same bits whatever the batch, the length, the padding and the other rows."""
    params, cfg = tiny()
    inputs = m1_inputs((4, 40))
    full = backend.next_probs(params, cfg, inputs)
    for length in (1, 2, 9, 39):
        assert np.array_equal(backend.next_probs(params, cfg, inputs[:, :length]), full[:, :length])
        assert np.array_equal(backend.next_probs(params, cfg, inputs[2:3, :length])[0], full[2, :length])
    changed = inputs.copy()
    changed[:, 11:] = (changed[:, 11:] + 1) % 257  # later inputs and other rows change nothing before them
    changed[0] = m1_inputs((1, 40), seed=9)[0]
    assert np.array_equal(backend.next_probs(params, cfg, changed)[1:, :11], full[1:, :11])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_close_to_the_ordinary_forward_pass(dtype):
    params, cfg = tiny(dtype)
    inputs = m1_inputs((2, 150))
    logits = ref_exact.logits(params, cfg, inputs)
    expected = tr.forward(params, cfg, inputs)
    tolerance = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(logits, expected, rtol=tolerance, atol=tolerance)
    probs = ref_exact.softmax64(logits)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-13)


def test_exp64_is_accurate_and_identical():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(30.0, 2000), [0.0, -1e-300, -0.5, -699.9, -700.0, -700.1, -np.inf]])
    ours = ref_exact.exp64(x)
    assert np.array_equal(fast_exact.exp64(x), ours)
    mpmath.mp.prec = 80
    for value, got in zip(x[:200], ours[:200]):
        exact = float(mpmath.exp(mpmath.mpf(value)))
        assert abs(got - exact) <= 4 * math.ulp(exact)
    assert ours[-1] == 0.0 and ours[-2] == 0.0 and ours[-3] > 0.0


def test_vectorised_exp_equals_the_scalar_one_on_every_nonpositive_input():
    """_exp64_nonpositive builds 2^k from its bits instead of calling ldexp: the same values for x <= 0, including
    the underflow edge, -inf, the values whose k changes, and tails of odd lengths."""
    rng = np.random.default_rng(1)
    k = np.arange(-1011, 1)
    edges = np.concatenate([(k + 0.5) * math.log(2), np.nextafter((k + 0.5) * math.log(2), 0), k * math.log(2)])
    x = np.concatenate([-rng.exponential(30.0, 3000), -rng.uniform(0, 700, 3000), edges[edges <= 0],
                        [0.0, -0.0, -5e-324, -1e-300, -699.9999, -700.0, np.nextafter(-700.0, 0),
                         np.nextafter(-700.0, -1), -700.1, -1e300, -np.inf]])
    want = fast_exact.exp64(x)
    for n in (len(x), 1, 7, 33):
        out = np.full(len(x), 9.0)
        fast_exact._exp64_nonpositive(x.copy(), n, out, np.empty(len(x), dtype=np.int64))
        assert np.array_equal(out[:n], want[:n]) and np.all(out[n:] == 9.0)
    same = x.copy()  # in place, as the callers use it
    fast_exact._exp64_nonpositive(same, len(x), same, np.empty(len(x), dtype=np.int64))
    assert np.array_equal(same, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prefix_rows_equal_full_evaluations(dtype):
    """Growing slots one input at a time (with resets and slots that wait) gives next_probs' rows bit for bit,
    also past the cache's first capacity and past max_distance."""
    params, cfg = tiny(dtype)
    inputs = m1_inputs((3, 140), seed=4)
    full = ref_exact.next_probs(params, cfg, inputs)
    rows = fast_exact.PrefixRows(params, cfg, n_slots=3, capacity=8)
    for t in range(140):
        slots = [0, 2] if t % 3 else [0, 1, 2]  # slot 1 waits now and then: it falls behind
        for slot in slots:
            assert rows.lengths[slot] <= t
        got = rows.extend(slots, inputs[slots, rows.lengths[slots]])
        for a, slot in enumerate(slots):
            assert np.array_equal(got[a], full[slot, rows.lengths[slot] - 1])
    rows.reset([2])
    again = rows.extend([2], inputs[2, :1])
    assert np.array_equal(again[0], full[2, 0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prefix_rows_equal_full_evaluations_at_the_longest_context(dtype):
    """Slots grown to 300 positions (past the cache's growths, past max_distance, past 256), several inputs per call
    and slots at different lengths in one call: every row equals next_probs' on one and on two threads."""
    import numba
    params, cfg = tiny(dtype)
    inputs = m1_inputs((2, 300), seed=5)
    full = fast_exact.next_probs(params, cfg, inputs)
    assert np.array_equal(full[:, -40:], ref_exact.next_probs(params, cfg, inputs)[:, -40:])
    threads = numba.get_num_threads()
    for n_threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(n_threads)
        try:
            rows = fast_exact.PrefixRows(params, cfg, n_slots=2, capacity=4)
            got = rows.extend([0, 0, 0], inputs[0, :3])  # slot 0 leads by 3 positions
            assert np.array_equal(got, full[0, :3])
            for t in range(297):
                got = rows.extend([1, 0], [inputs[1, t], inputs[0, t + 3]])
                assert np.array_equal(got[0], full[1, t]) and np.array_equal(got[1], full[0, t + 3])
        finally:
            numba.set_num_threads(threads)


def test_compiled_positions_equal_numpys_and_refuse_a_slot_out_of_range():
    """PrefixRows.extend takes its positions from the compiled take_positions: the same as PrefixRows.positions'
    NumPy computation (argsort/searchsorted) for repeated and unordered slots, lengths bumped once per entry; a
    slot out of range is refused with nothing changed."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 50, 7).astype(np.int64)
    counts = np.zeros(7, dtype=np.int64)
    for size in (0, 1, 3, 12, 40):
        slots = rng.integers(0, 7, size).astype(np.int64)
        order = np.argsort(slots, kind="stable")
        rank = np.empty(size, dtype=np.int64)
        rank[order] = np.arange(size) - np.searchsorted(slots[order], slots[order], side="left")
        want, want_lengths = lengths[slots] + rank, lengths + np.bincount(slots, minlength=7)
        got = np.full(size, -9, dtype=np.int64)
        top = fast_exact.take_positions(lengths, slots, counts, got)
        assert np.array_equal(got, want) and np.array_equal(lengths, want_lengths)
        assert top == (want.max() if size else -1) and not counts.any()
    before = lengths.copy()
    for bad in (7, -1):
        assert fast_exact.take_positions(lengths, np.array([0, bad]), counts, np.empty(2, dtype=np.int64)) == -2
        assert np.array_equal(lengths, before) and not counts.any()


@pytest.mark.parametrize("old_blocks, old_block, capacity, block", [
    (1, 8, 16, 16), (1, 32, 128, 64), (2, 64, 256, 64), (1, 64, 128, 64), (2, 64, 256, 256), (4, 16, 128, 32),
    (2, 4, 16, 4), (16, 4, 128, 64)])
def test_a_grown_key_cache_keeps_every_position(old_blocks, old_block, capacity, block):
    """regrouped moves a key cache into a larger one, maybe with another block size (its fast paths and the
    general one): every old position's key must be where the new layout says, keys[..., j // block, :, j % block]."""
    rng = np.random.default_rng(old_block + capacity)
    keys = rng.standard_normal((2, 3, old_blocks, 5, old_block)).astype(np.float32)
    grown = fast_exact.regrouped(keys, capacity, block)
    assert grown.shape == (2, 3, capacity // block, 5, block)
    for j in range(old_blocks * old_block):
        assert np.array_equal(grown[:, :, j // block, :, j % block], keys[:, :, j // old_block, :, j % old_block])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_scores_in_blocks_of_four_equal_the_general_loop(dtype):
    """_scores_by_fours (key_layout's small blocks: four sums in registers) gives _scores_by_blocks' scores bit for
    bit for every count of positions across block boundaries (1 .. 13), float32, float64 and a bfloat16 cache
    (uint16, rule 4); the unused positions of its last block hold NaN here, which must not reach a score."""
    rng = np.random.default_rng(5)
    head_dim, capacity = 64, 16
    wide = np.float32 if dtype == np.uint16 else dtype
    q = rng.standard_normal(head_dim).astype(wide)
    by_position = rng.standard_normal((head_dim, capacity)).astype(np.float32)  # [dh, cap]
    if dtype == np.uint16:  # bfloat16 values: a float32's upper 16 bits
        cache = (by_position.view(np.uint32) >> 16).astype(np.uint16)
    else:
        cache = by_position.astype(dtype)
    one_block = np.ascontiguousarray(cache[None])  # [1, dh, cap]
    fours = np.ascontiguousarray(cache.reshape(head_dim, capacity // 4, 4).transpose(1, 0, 2))  # [cap/4, dh, 4]
    for n in range(1, 14):
        padded = fours.copy()
        for j in range(n, -(-n // 4) * 4):  # the last block's positions past n: NaN (a bfloat16 NaN's bits)
            padded[j // 4, :, j % 4] = 0x7FC0 if dtype == np.uint16 else np.nan
        want = np.full(capacity, -1.0, dtype=wide)
        got = np.full(capacity, -1.0, dtype=wide)
        fast_exact._scores_by_blocks(q, one_block, n, wide(0), want)
        fast_exact._scores_by_fours(q, padded, n, wide(0), got)
        assert np.array_equal(got[:n].view(np.uint8), want[:n].view(np.uint8)), n
