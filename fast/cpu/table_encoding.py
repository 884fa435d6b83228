"""Equal-Info encoding with a finite-context model: the whole sequence in ONE compiled call.

For a model with context_length k = 0..7 (ref.models' Unigram and Markov models) a ContextTable (fast/cpu/ac.py)
holds one quantized CDF per context. A window position's context is BOS*(k-j) + its j predecessors after j = 0..k
symbols of its window, so every context any window position could have is listed first (`_window_context_ids`),
evaluated in batched calls, and the whole sequence is then cut into windows by the compiled `_encode_with_table`,
with no Python per symbol or window. The rows equal ref's CdfCursor's because such a model's row is a
deterministic function of its context (the protocol in ref/models.py).
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu.arithmetic import FULL
from equalinfo.fast.cpu.window_rule import (META_DELIMITED, META_GREEDY, META_LENGTH, META_START, N_META_COLUMNS,
    end_window, raise_window_error, try_symbol)
from equalinfo.ref.symbols import BOS


@njit(cache=True)
def _grow_rows(array, n_rows):
    bigger = np.zeros((max(2 * array.shape[0], n_rows),) + array.shape[1:], dtype=array.dtype)
    bigger[:array.shape[0]] = array
    return bigger


@njit(cache=True)
def _encode_with_table(symbols, cdfs, row_of, k, window_bits, delimit, precision):
    """All windows of symbols [n]; row_of[t, j] is the table row of position t after j (<= k) window symbols.

    Returns (error start or -1, error code, n_windows, bits [>= n_windows, b], meta [>= n_windows,
    N_META_COLUMNS]).
    """
    n = symbols.shape[0]
    buf = np.zeros(window_bits + 128, dtype=np.uint8)  # one window's emitted bits (+ a failed trial's)
    rowidx = np.zeros(64, dtype=np.int64)  # table rows of the current window's positions
    bits = np.zeros((16, window_bits), dtype=np.uint8)
    meta = np.zeros((16, N_META_COLUMNS), dtype=np.int64)
    start, n_windows = 0, 0
    while start < n:
        low, range_, n_bits, i = np.int64(0), np.int64(FULL), 0, 0
        while True:  # greedy
            if i + 1 >= rowidx.shape[0]:
                rowidx = _grow_rows(rowidx, i + 2)
            rowidx[i] = row_of[start + i, min(i, k)]
            if start + i == n:
                break
            fitted, low, range_, n_bits = try_symbol(low, range_, n_bits, buf, cdfs[rowidx[i]],
                                                      symbols[start + i], window_bits, precision)
            if not fitted:
                break
            i += 1
        if n_windows == bits.shape[0]:
            bits, meta = _grow_rows(bits, n_windows + 1), _grow_rows(meta, n_windows + 1)
        length, delimited = end_window(cdfs, rowidx, symbols, start, i, start + i == n, delimit,
                                        low, range_, n_bits, buf, window_bits, precision, bits[n_windows])
        if length < 0:
            return start, length, n_windows, bits, meta
        meta[n_windows, META_START], meta[n_windows, META_LENGTH], meta[n_windows, META_GREEDY] = start, length, i
        meta[n_windows, META_DELIMITED] = delimited
        n_windows += 1
        start += length
    return -1, 0, n_windows, bits, meta


def _window_context_ids(symbols, k):
    """Context ids [n+1, k+1]: [t, j] is the context of position t after j window symbols (j clipped to t)."""
    n = len(symbols)
    ids = np.zeros((n + 1, k + 1), dtype=np.int64)
    t = np.arange(n + 1)
    for j in range(k + 1):
        kept = np.minimum(j, t)  # real symbols in the context
        ident = np.zeros(n + 1, dtype=np.int64)
        for m in range(k):  # context entry m (oldest first) is the symbol k - m places back, or BOS
            back = k - m
            index = t - back
            entry = np.where(back <= kept, symbols[np.maximum(index, 0)] if n else BOS, BOS)
            ident = ident * (BOS + 1) + entry
        ids[:, j] = ident
    return ids


def encode_with_table(symbols, table, window_bits, precision, delimit):
    """(bits [W, b], meta [W, N_META_COLUMNS]) of one sequence's windows, every row from the ContextTable."""
    rows = table.rows(_window_context_ids(symbols, table.k))  # [n+1, k+1]
    error_start, code, n_windows, bits, meta = _encode_with_table(
        symbols, table.cdfs, rows, table.k, int(window_bits), bool(delimit), int(precision))
    if error_start >= 0:
        raise_window_error(error_start, code, window_bits, precision)
    return bits[:n_windows], meta[:n_windows]
