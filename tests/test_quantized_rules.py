"""Properties every quantized exact rule must have (rule 2, ref/integer_m1.py; rule 3, ref/int8_m1.py), checked on
ref and on fast/cpu's twin: a row depends on its prefix alone, thread counts change no bit, and the key/value-cached
grower (PrefixRows) gives next_probs' rows. tests/test_integer_m1.py and tests/test_int8_m1.py test each rule's own
steps."""
import numpy as np
import pytest
from helpers import m1_inputs
from test_integer_m1 import small

from equalinfo.fast.cpu import int8_m1 as cpu_int8
from equalinfo.fast.cpu import integer_m1 as cpu_int
from equalinfo.fast.cpu.threads import set_threads
from equalinfo.ref import int8_m1, integer_m1

RULES = {2: (integer_m1, cpu_int), 3: (int8_m1, cpu_int8)}  # rule -> (ref's module, fast.cpu's twin)


@pytest.fixture(scope="module", params=sorted(RULES), ids=lambda rule: f"rule{rule}")
def rule(request):
    """(ref module, cpu module, quantized params, cfg) of a small float32 M1 under the rule."""
    ref, cpu = RULES[request.param]
    params, cfg = small()
    return ref, cpu, ref.quantize_params(params, cfg), cfg


def test_a_row_depends_on_its_prefix_alone(rule):
    """Batch size, padded length, padding values and the other rows change nothing (ref and cpu)."""
    ref, cpu, qparams, cfg = rule
    inputs = m1_inputs((5, 14), seed=3)
    for rows in (ref.next_probs, cpu.next_probs):
        together = rows(qparams, cfg, inputs)
        for b, length in [(0, 14), (1, 5), (4, 1), (2, 9)]:
            alone = rows(qparams, cfg, inputs[b:b + 1, :length])
            assert np.array_equal(alone[0], together[b, :length])
            padded = np.concatenate([inputs[b:b + 1, :length], m1_inputs((1, 7), seed=b)], axis=1)
            assert np.array_equal(rows(qparams, cfg, padded)[0, :length], together[b, :length])


def test_thread_counts_change_nothing(rule):
    """OpenBLAS and Numba on 1 or 2 threads, with rows large enough for BLAS to split the products."""
    ref, cpu, qparams, cfg = rule
    inputs = m1_inputs((64, 24), seed=5)
    results = []
    for threads in (1, 2):
        try:
            set_threads(threads)
        except ValueError:
            pytest.skip("one core: no second thread count to compare")
        results.append(cpu.next_probs(qparams, cfg, inputs))
    set_threads(2)
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(results[0][:2], ref.next_probs(qparams, cfg, inputs[:2]))


def test_prefix_rows_grow_to_the_same_bits(rule):
    """The key/value-cached grower, one input per call (a decoder) and several per slot (an encoder's lookahead)."""
    ref, cpu, qparams, cfg = rule
    inputs = m1_inputs((3, 20), seed=6)  # beyond the initial capacity of 8 below: the caches grow
    want = ref.next_probs(qparams, cfg, inputs)
    grower = cpu.PrefixRows(qparams, cfg, n_slots=4, capacity=8)
    steps = [grower.extend([2, 0, 3], inputs[:, t]) for t in range(20)]
    assert np.array_equal(np.stack(steps, axis=1), want)
    grower.reset([0, 2, 3])
    first = grower.extend(np.repeat([3, 0, 2], 5), inputs[:, :5].reshape(-1))  # five inputs per slot in one call
    rest = grower.extend([0, 0, 2, 3, 3, 2], [inputs[1, 5], inputs[1, 6], inputs[2, 5], inputs[0, 5], inputs[0, 6],
                                              inputs[2, 6]])
    assert np.array_equal(first.reshape(3, 5, -1), want[:, :5])
    assert np.array_equal(rest[[3, 0, 2]], want[:, 5])
    assert np.array_equal(rest[[4, 1, 5]], want[:, 6])


@pytest.mark.parametrize("ref, dtype, top", [(integer_m1, np.int16, 32767), (int8_m1, np.int8, 127)])
def test_weights_quantize_per_channel_within_half_a_step(ref, dtype, top):
    w = np.random.default_rng(0).normal(size=(40, 7)) * np.array([1e-3, 1, 10, 0, 1, 1, 1])
    w[3, 6] = -5.0  # a channel whose largest magnitude is negative
    w_int, scale = ref.quantize_weight(w)
    assert w_int.dtype == dtype and scale.shape == (7,)
    assert np.abs(w_int.astype(int)).max(axis=0).tolist() == [top, top, top, 0, top, top, top]
    assert w_int.min() >= -top  # never the type's most negative value
    assert np.all(np.abs(w_int * scale - w) <= scale / 2 * (1 + 1e-12))
    assert scale[3] == 1.0  # an all-zero channel
