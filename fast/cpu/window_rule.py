"""ref/equalinfo.py's window rule on one encoder state, compiled: what both Equal-Info encoders of fast.cpu share.

An encoder state is (low, range, n_bits, buf): the interval [low, low + range) in frame units as in
ref.arithmetic, the bits emitted so far and the buffer holding them (uint8, a window's b bits plus room for one
failed trial). `fits`, `delimiting_cell` and `shortest_cell` are ref.equalinfo's functions of the same names;
`try_symbol` is one greedy step, undone in place when the window would not fit; `end_window` picks the window's
length and bits as ref's encode_window does. fast/cpu/table_encoding.py and fast/cpu/lockstep.py run them.

A window's description is a row of int64 meta [W, N_META_COLUMNS] (ref.equalinfo.Window's fields).
"""
import numpy as np
from numba import njit

from equalinfo.fast.cpu.arithmetic import FULL, STATE_BITS, encode_step, point_bits, undo_carry
from equalinfo.ref.equalinfo import Window, WindowError

META_START, META_LENGTH, META_GREEDY, META_DELIMITED = range(4)  # Window's start, length, greedy_length, delimited
N_META_COLUMNS = 4
ERROR_NO_CELL, ERROR_NO_DELIMITER = -2, -1  # end_window's lengths that are errors


@njit(cache=True)
def fits(low, range_, n_bits, window_bits):
    """True if [low, low + range) contains an aligned cell of width 2^-window_bits (ref's fits)."""
    shift = n_bits + STATE_BITS - window_bits  # log2 of a cell's width in frame units
    if shift <= 0:
        return True
    if shift > STATE_BITS:  # a cell wider than the frame: wider than any interval
        return False
    cell = np.int64(1) << shift
    start = -((-low) // cell) * cell
    return start + cell <= low + range_


@njit(cache=True)
def delimiting_cell(low, range_, n_bits, cdf, window_bits, precision):
    """First cell inside the interval that strictly contains a child boundary of cdf, or -1 (ref's rule)."""
    shift = n_bits + STATE_BITS - window_bits
    if shift <= 0 or shift > STATE_BITS:
        return np.int64(-1)
    cell = np.int64(1) << shift
    for s in range(1, cdf.shape[0] - 1):  # boundary between children s-1 and s
        boundary = low + ((range_ * cdf[s]) >> precision)
        start = (boundary >> shift) << shift
        if start < boundary and start >= low and start + cell <= low + range_:
            return start
    return np.int64(-1)


@njit(cache=True)
def shortest_cell(low, range_, n_bits, window_bits):
    """Start of the shortest dyadic cell inside the interval (at most window_bits long), or -1."""
    for length in range(n_bits, window_bits + 1):
        shift = n_bits + STATE_BITS - length
        cell = np.int64(1) << shift if shift > 0 else np.int64(1)
        start = -((-low) // cell) * cell
        if start + cell <= low + range_:
            return start
    return np.int64(-1)


@njit(cache=True)
def try_symbol(low, range_, n_bits, buf, cdf, symbol, window_bits, precision):
    """Encode symbol if the window still fits afterwards: (fitted, low, range, n_bits); undone in place if not."""
    new_low, new_range, new_bits, carried_at = encode_step(low, range_, n_bits, buf, cdf, symbol, precision)
    if fits(new_low, new_range, new_bits, window_bits):
        return True, new_low, new_range, new_bits
    if carried_at >= 0:
        undo_carry(buf, carried_at, n_bits)
    return False, low, range_, n_bits


@njit(cache=True)
def end_window(cdfs, rowidx, symbols, start, greedy, at_end, delimit, low, range_, n_bits, buf,
                window_bits, precision, out):
    """Pick the window's length and b bits (written to out [b]) after `greedy` symbols fitted.

    cdfs[rowidx[j]] is the CDF of the window's symbol j (j = 0..greedy); (low, range, n_bits, buf) is the encoder
    after `greedy` symbols. Returns (length, delimited), or length < 0 for an error (ERROR_*).
    """
    if not delimit:
        cell = shortest_cell(low, range_, n_bits, window_bits)
        if cell < 0:
            return ERROR_NO_CELL, False
        point_bits(buf, n_bits, cell, window_bits, out)
        return greedy, False
    for length in range(greedy, 0, -1):
        if length < greedy:  # the fallback: re-encode the window's first `length` symbols (rare)
            low, range_, n_bits = np.int64(0), np.int64(FULL), 0
            for j in range(length):
                low, range_, n_bits, _ = encode_step(low, range_, n_bits, buf, cdfs[rowidx[j]],
                                                      symbols[start + j], precision)
        cell = delimiting_cell(low, range_, n_bits, cdfs[rowidx[length]], window_bits, precision)
        if cell >= 0:
            point_bits(buf, n_bits, cell, window_bits, out)
            return length, True
        if at_end:  # the input's last window keeps all its symbols; the decoder is told the count
            cell = shortest_cell(low, range_, n_bits, window_bits)
            if cell < 0:
                return ERROR_NO_CELL, False
            point_bits(buf, n_bits, cell, window_bits, out)
            return greedy, False
    return ERROR_NO_DELIMITER, False


def raise_window_error(start, code, window_bits, precision):
    """The WindowError of end_window's error code (ref's messages), for the window at symbol `start`."""
    if code == ERROR_NO_CELL:
        raise WindowError("the interval holds no cell of the window's size")
    raise WindowError(f"no delimiting cell for the window at symbol {start} (model too extreme for "
                      f"window_bits={window_bits}, precision={precision})")


def windows_of(meta, bits):
    """ref.equalinfo.Window of each meta row [N_META_COLUMNS] and its bits [b]."""
    return [Window(int(m[META_START]), int(m[META_LENGTH]), int(m[META_GREEDY]), bool(m[META_DELIMITED]), b)
            for m, b in zip(meta, bits)]
