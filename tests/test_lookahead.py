"""The lockstep encoder's adaptive lookahead (fast/cpu/lookahead.py): it learns symbol costs from ended windows and
asks each stream the rows up to the first symbol predicted not to fit. Only speed depends on it: that the bits do not
is tests/test_fast_cpu_coder.py's and tests/test_int8_m1.py's (every lookahead gives ref's bits)."""
import numpy as np

from equalinfo.fast.cpu import equalinfo as fast_ei
from equalinfo.fast.cpu import lockstep
from equalinfo.fast.cpu.lookahead import FIRST_COST, CostTable, Lookahead, learn_costs
from equalinfo.ref.symbols import N_SYMBOLS

PRECISION = 14
WIDTH = 63  # every symbol's CDF width below: each costs 14 - log2(63) = 8.02 bits, so a 16-bit window holds one


def flat_cdfs(rows):
    """[1, rows, N_SYMBOLS + 1] CDFs giving every byte the width WIDTH (EOS the rest)."""
    cdf = np.minimum(np.arange(N_SYMBOLS + 1) * WIDTH, 1 << PRECISION)
    cdf[-1] = 1 << PRECISION
    return np.tile(cdf, (1, rows, 1)).astype(np.int64)


def asks(lookahead, flat, avail, used, live=1):
    offsets = np.array([0, len(flat)])
    n = np.zeros(live, dtype=np.int64)
    return lookahead.per_stream(flat, offsets, n, n, np.full(live, avail), np.full(live, float(used)))


def test_before_any_window_it_walks_with_the_first_guess():
    lookahead = Lookahead(None, 16)
    flat = np.arange(65, 85, dtype=np.int64)
    # FIRST_COST bits a symbol: 16 // FIRST_COST symbols fit, the next one's row ends the window; a lone stream
    # (fewer than NARROW live) asks one row more
    assert asks(lookahead, flat, 0, 0.0)[0] == int(16 // FIRST_COST) + 2
    assert list(asks(lookahead, flat, 0, 0.0, live=Lookahead.NARROW)) == [int(16 // FIRST_COST) + 1] * 4


def test_learnt_costs_predict_the_window_end():
    lookahead = Lookahead(None, 16)
    flat = np.arange(65, 85, dtype=np.int64)
    lookahead.record(flat_cdfs(2), flat, np.array([0, len(flat)]), np.array([0]), np.array([0]), np.array([1]),
                     PRECISION)  # a window of one symbol (65), 66 did not fit
    assert lookahead.table.totals[1] == 2
    wide = Lookahead.NARROW
    assert list(asks(lookahead, flat, 0, 0.0, live=wide)) == [2] * wide  # rows 0 and 1: 65 fits, 66 does not
    assert list(asks(lookahead, flat, 1, 8.02, live=wide)) == [1] * wide  # after 65: row 1 decides
    assert list(asks(lookahead, flat, 1, 1.0, live=wide)) == [2] * wide  # room for 66 too


def test_asks_stay_within_one_and_most():
    lookahead = Lookahead(None, 1 << 20)  # a budget no text reaches: rows to the stream's end, capped
    flat = np.zeros(500, dtype=np.int64)
    assert asks(lookahead, flat, 0, 0.0, live=8)[0] == Lookahead.MOST
    assert asks(lookahead, flat[:10], 0, 0.0, live=8)[0] == 11  # the row after the last symbol too
    assert asks(Lookahead(None, 16), flat, 3, 99.0, live=8)[0] == 1  # past the budget: still one row
    assert list(asks(Lookahead(5, 16), flat, 3, 99.0, live=3)) == [5, 5, 5]  # a fixed lookahead


def test_learn_costs_reads_each_window_rows_and_symbols():
    table = CostTable()
    flat = np.array([65, 66, 67, 68], dtype=np.int64)
    # the window from symbol 1: 66 and 67 fitted, 68 did not (its row, 2, is in hand too)
    learn_costs(table.sums, table.counts, table.totals, flat_cdfs(3), flat, np.array([0, 4]), np.array([0]),
                np.array([1]), np.array([2]), PRECISION)
    cost = PRECISION - np.log2(WIDTH)
    assert table.totals[1] == 3 and np.isclose(table.totals[0], 3 * cost)
    assert table.counts[0, 257, 66] == 1 and table.counts[1, 66, 67] == 1 and table.counts[2, 67, 68] == 1


def test_the_adaptive_lookahead_evaluates_fewer_rows_than_a_fixed_one():
    """On a text of repeated words the learnt costs are near exact: few rows past a window's end, few top-ups."""
    from helpers import simple_models
    _, models = simple_models()
    text = np.frombuffer(b"the cat sat on the mat and the dog sat on the log " * 40, np.uint8).astype(np.int64)
    pieces = [text[i:i + 400] for i in range(0, len(text), 400)]
    counts = {}
    for lookahead in (None, 1, 8):
        rows, calls = 0, 0
        real = lockstep.rows_for_streams

        def counting(model, flat, offsets, stream_state, hist, ask, *args, **kwargs):
            nonlocal rows, calls
            before = stream_state[:, lockstep.AVAIL].copy()
            live = stream_state[:, lockstep.START] >= 0
            hist = real(model, flat, offsets, stream_state, hist, ask, *args, **kwargs)
            rows += int(np.sum((stream_state[:, lockstep.AVAIL] - before)[live]))
            calls += 1
            return hist
        lockstep.rows_for_streams = counting
        try:
            fast_ei.compress_batch(pieces, models["markov2"], 16, use_table=False, lookahead=lookahead)
        finally:
            lockstep.rows_for_streams = real
        counts[lookahead] = rows, calls
    assert counts[None][0] < 1.15 * counts[1][0]  # lookahead 1 evaluates exactly the rows needed
    assert counts[None][1] < 0.5 * counts[1][1]
    assert counts[None][0] < 0.75 * counts[8][0]
