"""The decoder's attention (fast/cpu/exact_m1._attend_newest, whose float32 sums run in SIMD registers: `Lanes`)
against the exact rule written as plain Python loops, one rounding at a time, on values chosen so that a sum whose
order changed would round differently: large terms that cancel. The cache positions past each query's own are NaN,
which must reach no output (the kernel sums whole groups of 16 or 32 positions; only the query's are read)."""
import numpy as np
import pytest

from equalinfo.fast.cpu import exact_m1 as fast_exact

HEAD_DIM, N_HEADS = 64, 2
LENGTHS = [1, 2, 31, 32, 33, 63, 64, 65, 96, 97, 128]  # across the 16- and 32-lane groups and the key blocks


def plain_attention(q, keys, values, bias, scale):
    """One query over keys/values [n, dh] (float32), bias [n] (position j's), by the rule with numpy float32 scalars:
    each score sums c in order, each output sums j in order, every product and sum rounded on its own."""
    n = keys.shape[0]
    scores = np.empty(n, dtype=np.float32)
    for j in range(n):
        total = np.float32(0)
        for c in range(HEAD_DIM):
            total = np.float32(total + np.float32(q[c] * keys[j, c]))
        scores[j] = np.float32(np.float32(total * scale) + bias[j])
    top = max(scores.tolist())  # no NaN here
    weights = fast_exact.exp64(scores.astype(np.float64) - top).astype(np.float32)
    total, acc = np.float32(0), np.zeros(HEAD_DIM, dtype=np.float32)
    for j in range(n):
        total = np.float32(total + weights[j])
        for c in range(HEAD_DIM):
            acc[c] = np.float32(acc[c] + np.float32(weights[j] * values[j, c]))
    return acc / total


def cancelling(rng, shape):
    """float32 values ~1e4 with alternating signs along the last axis, plus small ones: a sum of them is mostly
    rounding error, so its bits depend on the order of its terms."""
    signs = np.where(np.arange(shape[-1]) % 2 == 0, 1.0, -1.0)
    return (1e4 * signs * rng.uniform(0.5, 1.5, shape) + rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("cache", [np.float32, np.uint16])
@pytest.mark.parametrize("block", [fast_exact.KEY_BLOCK, fast_exact.SMALL_KEY_BLOCK])
def test_decoder_attention_equals_the_plain_loops(cache, block):
    rng = np.random.default_rng(7)
    capacity = 128
    keys_by_position = cancelling(rng, (N_HEADS, capacity, HEAD_DIM)) * np.float32(1e-3)  # scores of a few units
    values = np.ascontiguousarray(cancelling(rng, (N_HEADS, HEAD_DIM, capacity)).transpose(0, 2, 1))  # signs by j
    if cache == np.uint16:  # bfloat16 caches: the values the cache can hold, and their upper 16 bits
        keys_by_position = (keys_by_position.view(np.uint32) & 0xFFFF0000).view(np.float32)
        values = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)
    bias = rng.standard_normal((N_HEADS, capacity)).astype(np.float32)
    scale = np.float32(1 / 8)
    for n in LENGTHS:
        q = cancelling(rng, (1, N_HEADS, HEAD_DIM)) * np.float32(1e-3)
        stored_keys, stored_values = keys_by_position.copy(), values.copy()
        stored_keys[:, n:], stored_values[:, n:] = np.nan, np.nan  # what no query may read
        if cache == np.uint16:
            stored_keys, stored_values = ((a.view(np.uint32) >> 16).astype(np.uint16) for a in (stored_keys,
                                                                                              stored_values))
        key_blocks = np.ascontiguousarray(  # [1, H, cap/block, dh, block]: position j at [j // block, :, j % block]
            stored_keys.reshape(N_HEADS, capacity // block, block, HEAD_DIM).transpose(0, 1, 3, 2)[None])
        reversed_bias = np.zeros((N_HEADS, capacity), dtype=np.float32)  # [H, cap]: _attend_newest's layout
        reversed_bias[:, capacity - n:] = bias[:, :n]
        out = np.empty((1, N_HEADS, HEAD_DIM), dtype=np.float32)
        fast_exact._attend_newest(q, key_blocks, np.ascontiguousarray(stored_values[None]), np.array([0]),
                                  np.array([n - 1]), reversed_bias, scale, np.float32(0), out)
        for h in range(N_HEADS):
            want = plain_attention(q[0, h], keys_by_position[h, :n], values[h, :n], bias[h, :n], scale)
            assert np.array_equal(out[0, h].view(np.uint32), want.view(np.uint32)), (n, h)
