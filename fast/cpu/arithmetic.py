"""Numba twin of ref/arithmetic.py: the same quantisation rule and the same integer coder, bit for bit.

Everything that decides a bit is integer arithmetic on int64 (STATE_BITS = 46 keeps range * cdf < 2^62), plus the
one float rule of `quantize`, which is evaluated here in exactly ref's order: a sequential float64 cumulative sum,
then ((C * F) / S) + 0.5, then floor. Numba compiles without fastmath, so LLVM may neither reassociate the sum nor
fuse the multiply into an FMA (it only contracts when the IR carries the `contract` flag, which fastmath sets);
the tests check the integers against ref on random, extreme and float32 rows.

Three layers, each built on the one before:
- the kernel API: @njit steps on plain integers and a bit buffer (uint8 0/1, MSB first), for other kernels to
  compose (fast/cpu/fused.py, fast/cpu/ac.py, fast/cpu/equalinfo.py). Callers validate their inputs first.
    encoder state (low, range_, n_bits) + buf:  encode_step, room_for_a_symbol, finish_bits, point_bits, undo_carry
    decoder state (offset, range_, position) + bits, tail_bit:  decoder_start, find_symbol, consume
    whole streams:  encode_rows_unchecked(cdfs, rows, symbols, p), decode_rows_unchecked(bits, cdfs, rows, p)
- the array API, validated: `encode_rows(cdfs, rows, symbols)` codes symbol i with CDF cdfs[rows[i]] (a table of
  CDFs indexed by context row, so a finite-context model costs no Python per symbol), `decode_rows` is its
  inverse; `encode_cdfs` / `decode_cdfs` are the rows = 0..n-1 case;
- the object API `Encoder` / `Decoder` with ref's interface (one compiled call per symbol).
Coding straight from float rows, without building whole CDFs, is fast/cpu/fused.py.
"""
import numpy as np
from numba import njit

from equalinfo.ref.arithmetic import (FULL, HALF, MAX_PRECISION, STATE_BITS, TOO_LARGE, CoderError, check_cdf,
    check_integers, check_precision)  # (re-exported)

__all__ = ["STATE_BITS", "FULL", "HALF", "MAX_PRECISION", "CoderError", "check_precision", "quantize",
           "check_cdf", "check_cdfs", "check_bits", "Encoder", "Decoder", "encode_rows", "decode_rows", "encode_cdfs",
           "decode_cdfs", "encode_step", "room_for_a_symbol", "finish_bits", "point_bits", "undo_carry",
           "decoder_start", "find_symbol", "consume", "encode_rows_unchecked", "decode_rows_unchecked"]

MASK = FULL - 1
MAX_BITS_PER_SYMBOL = 64  # renormalisation emits at most ~precision + 2 bits per symbol; room to spare


# ---------------------------------------------------------------------------------------------------------------
# quantisation


@njit(cache=True, inline="always")
def room_for_a_symbol(buf, n_bits):
    """buf, or a copy twice as long, so that one more symbol's bits (at most MAX_BITS_PER_SYMBOL) fit after n_bits."""
    if n_bits + MAX_BITS_PER_SYMBOL <= buf.shape[0]:
        return buf
    bigger = np.zeros(2 * buf.shape[0] + MAX_BITS_PER_SYMBOL, dtype=np.uint8)
    bigger[:n_bits] = buf[:n_bits]
    return bigger


@njit(cache=True)
def _quantize_rows(probs, precision):
    """(int64 CDFs [R, V+1], error) of float64 probs [R, V]: ref.arithmetic.quantize's rule, operation for operation.

    Validation rides along in the same pass, with ref's precedence over all rows: error 1 = a non-finite or
    negative entry anywhere, else 2 = a row summing to 0, else 3 = a row whose sum times F overflows (TOO_LARGE).
    """
    n_rows, n_symbols = probs.shape
    free = float((1 << precision) - n_symbols)
    top = (1 << precision) - n_symbols
    cdf = np.empty((n_rows, n_symbols + 1), dtype=np.int64)
    cumulative = np.empty(n_symbols, dtype=np.float64)
    bad_entry = zero_sum = too_large = False
    for r in range(n_rows):
        running = 0.0
        for k in range(n_symbols):  # sequential left-to-right sum, like np.cumsum
            value = probs[r, k]
            if not (value >= 0.0 and value <= np.inf) or value == np.inf:
                bad_entry = True
            running = running + value
            cumulative[k] = running
        total = cumulative[n_symbols - 1]
        zero_sum |= not total > 0.0
        too_large |= not total * free < np.inf
        if bad_entry or zero_sum or too_large:
            continue  # an error will be raised: no CDF needed
        cdf[r, 0] = 0
        for k in range(n_symbols):
            share = np.floor((cumulative[k] * free) / total + 0.5)
            cdf[r, k + 1] = (top if share >= free else np.int64(share)) + k + 1
        cdf[r, n_symbols] = 1 << precision
    return cdf, (1 if bad_entry else 2 if zero_sum else 3 if too_large else 0)


def quantize(probs, precision=14):
    """Integer CDFs [..., V+1] of float probabilities [..., V]: exactly ref.arithmetic.quantize (see its rule)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 0 or probs.shape[-1] == 0:
        raise CoderError(f"probs must have a non-empty last axis, got shape {probs.shape}")
    n_symbols = probs.shape[-1]
    check_precision(precision, n_symbols)
    flat = np.ascontiguousarray(probs.reshape(-1, n_symbols))  # [R, V]
    cdf, error = _quantize_rows(flat, int(precision))
    if error == 1:
        raise CoderError("probabilities must be finite and non-negative")
    if error == 2:
        raise CoderError("probabilities must have a positive sum")
    if error == 3:
        raise CoderError(TOO_LARGE)
    return cdf.reshape(probs.shape[:-1] + (n_symbols + 1,))


# ---------------------------------------------------------------------------------------------------------------
# validation


@njit(cache=True)
def _cdfs_error(cdfs, precision):
    """(code, row, symbol) of the first invalid CDF row: 0 fine, 1 wrong ends, 2 zero-width, 3 non-monotone."""
    for r in range(cdfs.shape[0]):
        if cdfs[r, 0] != 0 or cdfs[r, cdfs.shape[1] - 1] != (1 << precision):
            return 1, r, 0
    for r in range(cdfs.shape[0]):
        for s in range(cdfs.shape[1] - 1):
            if cdfs[r, s + 1] <= cdfs[r, s]:
                return (2 if cdfs[r, s + 1] == cdfs[r, s] else 3), r, s
    return 0, 0, 0


def check_cdfs(cdfs, precision):
    """Raise CoderError unless every row of cdfs [R, V+1] is a valid CDF (ref's messages); returns int64 cdfs."""
    cdfs = np.asarray(cdfs)
    if cdfs.ndim != 2 or cdfs.shape[1] < 2:
        raise CoderError(f"CDFs must be [rows, V+1] with V >= 1, got shape {cdfs.shape}")
    check_integers(cdfs)
    if cdfs.dtype.kind == "u" and cdfs.size and cdfs.max() >= 1 << 62:
        raise CoderError("CDF values out of range")
    cdfs = np.ascontiguousarray(cdfs, dtype=np.int64)  # a no-op for int64 input
    code, row, _ = _cdfs_error(cdfs, precision)
    if code:
        check_cdf(cdfs[row], precision)  # raises ref's error for the row
        raise AssertionError(f"ref accepts the CDF row {row} that the kernel rejects (code {code})")
    return cdfs


def check_bits(bits):
    bits = np.asarray(bits)
    if bits.ndim != 1 or (bits.size and (bits.dtype.kind not in "iub" or bits.min() < 0 or bits.max() > 1)):
        raise CoderError("bits must be a 1-D array of 0/1 values")
    return np.ascontiguousarray(bits, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# the shared interval update and the encoder's steps


@njit(cache=True, inline="always")
def child_bounds(range_, cdf, symbol, precision):
    """Offsets (lo, hi) of child `symbol` inside [0, range_): the one update encoder and decoder share."""
    return (range_ * cdf[symbol]) >> precision, (range_ * cdf[symbol + 1]) >> precision


@njit(cache=True, inline="always")
def _carry(buf, n_bits):
    """Add one at bit n_bits-1: trailing ones become zeros, the last zero becomes one; returns that zero's index."""
    position = n_bits - 1
    while position >= 0 and buf[position] == 1:
        buf[position] = 0
        position -= 1
    if position < 0:
        raise AssertionError("a carry ran off the front: the point lies past 1")
    buf[position] = 1
    return position


@njit(cache=True, inline="always")
def undo_carry(buf, position, n_bits):
    """Inverse of _carry: bits [position, n_bits) go back from 100..0 to 011..1."""
    buf[position] = 0
    for i in range(position + 1, n_bits):
        buf[i] = 1


@njit(cache=True)
def encode_step(low, range_, n_bits, buf, cdf, symbol, precision):
    """One symbol: (low, range, n_bits, carried_at) after it; carried_at = -1 if no carry. buf needs 64 free bits."""
    lo, hi = child_bounds(range_, cdf, symbol, precision)
    low += lo
    range_ = hi - lo
    carried_at = -1
    if low >= FULL:
        carried_at = _carry(buf, n_bits)
        low -= FULL
    while range_ <= HALF:
        buf[n_bits] = low >> (STATE_BITS - 1)
        n_bits += 1
        low = (low << 1) & MASK
        range_ <<= 1
    return low, range_, n_bits, carried_at


@njit(cache=True)
def point_bits(buf, n_bits, value, length, out):
    """out[:length] = the first `length` bits of the point at frame position `value` (see ref's point_bits).

    value may reach past the frame (< 2 * FULL): its carry goes into the copied head, never into buf.
    """
    for i in range(n_bits):
        out[i] = buf[i]
    if value >= FULL:
        _carry(out, n_bits)
        value -= FULL
    for i in range(length - n_bits):  # frame bits of value, MSB first, then zeros past the frame
        shift = STATE_BITS - 1 - i
        out[n_bits + i] = (value >> shift) & 1 if shift >= 0 else 0


@njit(cache=True)
def finish_bits(low, range_, n_bits, buf):
    """The shortest bit string whose dyadic interval lies inside [low, low + range) (ref's Encoder.finish)."""
    for extra in range(3):
        cell = np.int64(1) << (STATE_BITS - extra)
        start = -((-low) // cell) * cell
        if start + cell <= low + range_:
            out = np.empty(n_bits + extra, dtype=np.uint8)
            point_bits(buf, n_bits, start, n_bits + extra, out)
            return out
    raise AssertionError("unreachable: an interval wider than half the frame holds a quarter-frame cell")


@njit(cache=True)
def encode_rows_unchecked(cdfs, rows, symbols, precision):
    """bits of symbols [n], symbol i coded with cdfs[rows[i]] ([R, V+1] int64), in one call."""
    buf = np.zeros(64 + symbols.shape[0] * 4, dtype=np.uint8)  # grown by room_for_a_symbol if need be
    low, range_, n_bits = np.int64(0), np.int64(FULL), 0
    for i in range(symbols.shape[0]):
        buf = room_for_a_symbol(buf, n_bits)
        low, range_, n_bits, _ = encode_step(low, range_, n_bits, buf, cdfs[rows[i]], symbols[i], precision)
    return finish_bits(low, range_, n_bits, buf)


# ---------------------------------------------------------------------------------------------------------------
# the decoder's steps


@njit(cache=True, inline="always")
def _next_bit(bits, position, tail_bit):
    return np.int64(bits[position]) if position < bits.shape[0] else np.int64(tail_bit)


@njit(cache=True)
def decoder_start(bits, tail_bit):
    """(offset, range, position) of a fresh decoder: the first STATE_BITS bits read into offset."""
    offset = np.int64(0)
    for position in range(STATE_BITS):
        offset = (offset << 1) | _next_bit(bits, position, tail_bit)
    return offset, np.int64(FULL), np.int64(STATE_BITS)


@njit(cache=True, inline="always")
def find_symbol(offset, range_, cdf, precision):
    """The symbol whose child interval holds the point: the largest s with cdf[s] <= target (binary search)."""
    # floor(range * c / 2^p) <= offset  <=>  c <= (((offset + 1) << p) - 1) // range
    target = (((offset + 1) << precision) - 1) // range_
    lo, hi = 0, cdf.shape[0] - 1  # invariant: cdf[lo] <= target < cdf[hi]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cdf[mid] <= target:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def consume(offset, range_, position, bits, tail_bit, cdf, symbol, precision):
    """The decoder after `symbol`: (offset, range, position). The point must lie in the symbol's child."""
    lo, hi = child_bounds(range_, cdf, symbol, precision)
    offset -= lo
    range_ = hi - lo
    while range_ <= HALF:
        range_ <<= 1
        offset = (offset << 1) | _next_bit(bits, position, tail_bit)
        position += 1
    return offset, range_, position


@njit(cache=True)
def decode_rows_unchecked(bits, cdfs, rows, precision):
    """symbols [n] of bits, symbol i decoded with cdfs[rows[i]] (tail bits read as 0), in one call."""
    offset, range_, position = decoder_start(bits, 0)
    symbols = np.empty(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        cdf = cdfs[rows[i]]
        symbol = find_symbol(offset, range_, cdf, precision)
        offset, range_, position = consume(offset, range_, position, bits, 0, cdf, symbol, precision)
        symbols[i] = symbol
    return symbols


# ---------------------------------------------------------------------------------------------------------------
# public array API


def _check_symbols_for(cdfs, symbols):
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or (symbols.size and not np.issubdtype(symbols.dtype, np.integer)):
        raise CoderError(f"symbols must be a 1-D integer array, got {symbols.dtype} {symbols.shape}")
    symbols = symbols.astype(np.int64)
    bad = (symbols < 0) | (symbols >= cdfs.shape[1] - 1)
    if bad.any():
        raise CoderError(f"symbol {int(symbols[bad][0])} out of range for a CDF over {cdfs.shape[1] - 1} symbols")
    return symbols


def _check_rows(rows, n_rows):
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= n_rows)):
        raise CoderError(f"rows must be a 1-D array of indices below {n_rows}")
    return rows


def encode_rows(cdfs, rows, symbols, precision=14):
    """bits (uint8 0/1) of symbols [n] where symbol i is coded with cdfs[rows[i]] (cdfs [R, V+1] int64).

    Identical to ref's Encoder fed cdfs[rows[i]], symbols[i] for i = 0..n-1, then finish().
    """
    check_precision(precision)
    cdfs = check_cdfs(cdfs, precision)
    symbols = _check_symbols_for(cdfs, symbols)
    rows = _check_rows(rows, cdfs.shape[0])
    if rows.shape != symbols.shape:
        raise CoderError(f"rows {rows.shape} and symbols {symbols.shape} must have the same length")
    return encode_rows_unchecked(cdfs, rows, symbols, int(precision))


def decode_rows(bits, cdfs, rows, precision=14):
    """symbols [n] (int64) of bits, symbol i decoded with cdfs[rows[i]]: the inverse of encode_rows."""
    check_precision(precision)
    cdfs = check_cdfs(cdfs, precision)
    rows = _check_rows(rows, cdfs.shape[0])
    return decode_rows_unchecked(check_bits(bits), cdfs, rows, int(precision))


def encode_cdfs(cdfs, symbols, precision=14):
    """bits of symbols [n] coded with one CDF each, cdfs [n, V+1]."""
    return encode_rows(cdfs, np.arange(len(cdfs)), symbols, precision)


def decode_cdfs(bits, cdfs, precision=14):
    """symbols [n] of bits decoded with one CDF each, cdfs [n, V+1]."""
    return decode_rows(bits, cdfs, np.arange(len(cdfs)), precision)


# ---------------------------------------------------------------------------------------------------------------
# object API with ref's interface


@njit(cache=True)
def _encode_one(state, buf, cdf, symbol, precision):
    """Encoder.encode on the state array [low, range, n_bits]."""
    low, range_, n_bits, _ = encode_step(state[0], state[1], state[2], buf, cdf, symbol, precision)
    state[0], state[1], state[2] = low, range_, n_bits


class Encoder:
    """Arithmetic encoder with ref.arithmetic.Encoder's interface and bits.

    encode(cdf, symbol) repeatedly, then finish() -> bits. `low`, `range`, `bits`, `n_bits` read the state.
    """

    def __init__(self, precision=14):
        check_precision(precision)
        self.precision = int(precision)
        self._state = np.array([0, FULL, 0], dtype=np.int64)  # low, range, n_bits
        self._buf = np.zeros(256, dtype=np.uint8)

    low = property(lambda self: int(self._state[0]))
    range = property(lambda self: int(self._state[1]))
    n_bits = property(lambda self: int(self._state[2]))
    bits = property(lambda self: self._buf[:self.n_bits].copy())

    def copy(self):
        twin = Encoder(self.precision)
        twin._state, twin._buf = self._state.copy(), self._buf.copy()
        return twin

    def encode(self, cdf, symbol):
        cdf = np.asarray(cdf)
        check_cdf(cdf, self.precision)
        if not 0 <= symbol < len(cdf) - 1:
            raise CoderError(f"symbol {symbol} out of range for a CDF over {len(cdf) - 1} symbols")
        if self.n_bits + MAX_BITS_PER_SYMBOL > len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros(len(self._buf), dtype=np.uint8)])
        _encode_one(self._state, self._buf, cdf.astype(np.int64), int(symbol), self.precision)

    def point_bits(self, value, length):
        """Bits [length] of the point at frame position `value` (< 2 * FULL), as ref's Encoder.point_bits."""
        if length < self.n_bits:
            raise AssertionError("cannot describe a point with fewer bits than already emitted")
        out = np.empty(int(length), dtype=np.uint8)
        point_bits(self._buf, self.n_bits, np.int64(value), int(length), out)
        return out

    def finish(self):
        """The shortest bit string whose dyadic interval lies inside the final interval."""
        return finish_bits(self._state[0], self._state[1], int(self._state[2]), self._buf)


@njit(cache=True)
def _consume_one(state, bits, tail_bit, cdf, symbol, precision):
    """Decoder.consume on the state array [offset, range, position]; False if the point is not in the child."""
    lo, hi = child_bounds(state[1], cdf, symbol, precision)
    if not lo <= state[0] < hi:
        return False
    state[0], state[1], state[2] = consume(state[0], state[1], state[2], bits, tail_bit, cdf, symbol, precision)
    return True


@njit(cache=True)
def _find_one(state, cdf, precision):
    return find_symbol(state[0], state[1], cdf, precision)


class Decoder:
    """Arithmetic decoder with ref.arithmetic.Decoder's interface: bits past the end read as `tail_bit`.

    decode(cdf) = find(cdf) then consume(cdf, symbol), split as in ref for Equal-Info's two-decoder rule.
    """

    def __init__(self, bits, precision=14, tail_bit=0):
        check_precision(precision)
        self.precision = int(precision)
        self.bits = check_bits(bits)
        self.tail_bit = int(tail_bit)
        self._state = np.array(decoder_start(self.bits, self.tail_bit), dtype=np.int64)  # offset, range, position

    offset = property(lambda self: int(self._state[0]))
    range = property(lambda self: int(self._state[1]))
    position = property(lambda self: int(self._state[2]))

    def find(self, cdf):
        cdf = np.asarray(cdf)
        check_cdf(cdf, self.precision)
        return int(_find_one(self._state, cdf.astype(np.int64), self.precision))

    def consume(self, cdf, symbol):
        cdf = np.asarray(cdf).astype(np.int64)
        if not 0 <= symbol < len(cdf) - 1 or not _consume_one(self._state, self.bits, self.tail_bit, cdf,
                                                               int(symbol), self.precision):
            raise AssertionError("the point is not inside the chosen child")

    def decode(self, cdf):
        symbol = self.find(cdf)
        self.consume(cdf, symbol)
        return symbol
