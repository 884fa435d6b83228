"""Numba twin of ref/arithmetic.py: the same quantisation rule and the same integer coder, bit for bit.

Everything that decides a bit is integer arithmetic on int64 (STATE_BITS = 46 keeps range * cdf < 2^62), plus the
one float rule of `quantize`, which is evaluated here in exactly ref's order: a sequential float64 cumulative sum,
then ((C * F) / S) + 0.5, then floor. Numba compiles without fastmath, so LLVM may neither reassociate the sum nor
fuse the multiply into an FMA (it only contracts when the IR carries the `contract` flag, which fastmath sets);
the tests check the integers against ref on random, extreme and float32 rows.

Layout: small @njit helpers that work on plain integers (low, range, n_bits / offset, range, position) and a bit
buffer (uint8 0/1, MSB first), shared by
- the object API `Encoder` / `Decoder` (ref's interface, one compiled call per symbol), and
- array kernels that code a whole stream in one call: `encode_rows(cdfs, rows, symbols)` codes symbol i with
  CDF cdfs[rows[i]] (a table of CDFs indexed by context row, so a finite-context model costs no Python per
  symbol), `decode_rows` is its inverse; `encode_cdfs` / `decode_cdfs` are the rows = 0..n-1 case;
- a fused path from float rows, `encode_probs` / `decode_probs` (and `decode_one_probs`, one row per call, for
  decoders whose next row depends on the last symbol): quantize's rule evaluated only at the CDF entries the
  coder reads, same integers, bits and errors as quantize followed by encode_cdfs / decode_cdfs.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ref.arithmetic import (FULL, HALF, MAX_PRECISION, STATE_BITS, TOO_LARGE, CoderError,  # noqa: F401
                             check_precision)  # (re-exported)

__all__ = ["STATE_BITS", "FULL", "HALF", "MAX_PRECISION", "CoderError", "check_precision", "quantize",
           "check_cdf", "check_cdfs", "Encoder", "Decoder", "encode_rows", "decode_rows", "encode_cdfs",
           "decode_cdfs", "encode_probs", "decode_probs", "decode_one_probs"]

MASK = FULL - 1
MAX_BITS_PER_SYMBOL = 64  # renormalisation emits at most ~precision + 2 bits per symbol; room to spare


# ---------------------------------------------------------------------------------------------------------------
# quantisation


@njit(cache=True, inline="always")
def _room_for_a_symbol(buf, n_bits):
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


def check_cdf(cdf, precision):
    """Raise CoderError unless cdf is a 1-D integer CDF from 0 to 2^precision with every width >= 1."""
    cdf = np.asarray(cdf)
    if cdf.ndim != 1 or cdf.shape[0] < 2:
        raise CoderError(f"a CDF must be 1-D with at least 2 entries, got shape {cdf.shape}")
    check_cdfs(cdf[None], precision)


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
    if cdfs.dtype.kind not in "iu":
        raise CoderError(f"a CDF must hold integers (use quantize), got dtype {cdfs.dtype}")
    if cdfs.dtype.kind == "u" and cdfs.size and cdfs.max() >= 1 << 62:
        raise CoderError("CDF values out of range")
    cdfs = np.ascontiguousarray(cdfs, dtype=np.int64)  # a no-op for int64 input
    code, row, symbol = _cdfs_error(cdfs, precision)
    if code == 1:
        raise CoderError(f"a CDF must run from 0 to 2^{precision} = {1 << precision}, "
                         f"got {int(cdfs[row, 0])} .. {int(cdfs[row, -1])}")
    if code:
        kind = "zero-width" if code == 2 else "non-monotone"
        raise CoderError(f"{kind} CDF at symbol {symbol}: every symbol needs width >= 1")
    return cdfs


def _check_bits(bits):
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
def _undo_carry(buf, position, n_bits):
    """Inverse of _carry: bits [position, n_bits) go back from 100..0 to 011..1."""
    buf[position] = 0
    for i in range(position + 1, n_bits):
        buf[i] = 1


@njit(cache=True)
def _encode_step(low, range_, n_bits, buf, cdf, symbol, precision):
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
def _point_bits(buf, n_bits, value, length, out):
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
def _finish(low, range_, n_bits, buf):
    """The shortest bit string whose dyadic interval lies inside [low, low + range) (ref's Encoder.finish)."""
    for extra in range(3):
        cell = np.int64(1) << (STATE_BITS - extra)
        start = -((-low) // cell) * cell
        if start + cell <= low + range_:
            out = np.empty(n_bits + extra, dtype=np.uint8)
            _point_bits(buf, n_bits, start, n_bits + extra, out)
            return out
    raise AssertionError("unreachable: an interval wider than half the frame holds a quarter-frame cell")


@njit(cache=True)
def _encode_rows(cdfs, rows, symbols, precision):
    """bits of symbols [n], symbol i coded with cdfs[rows[i]] ([R, V+1] int64), in one call."""
    buf = np.zeros(64 + symbols.shape[0] * 4, dtype=np.uint8)  # grown by _room_for_a_symbol if need be
    low, range_, n_bits = np.int64(0), np.int64(FULL), 0
    for i in range(symbols.shape[0]):
        buf = _room_for_a_symbol(buf, n_bits)
        low, range_, n_bits, _ = _encode_step(low, range_, n_bits, buf, cdfs[rows[i]], symbols[i], precision)
    return _finish(low, range_, n_bits, buf)


# ---------------------------------------------------------------------------------------------------------------
# the decoder's steps


@njit(cache=True, inline="always")
def _next_bit(bits, position, tail_bit):
    return np.int64(bits[position]) if position < bits.shape[0] else np.int64(tail_bit)


@njit(cache=True)
def _decoder_start(bits, tail_bit):
    """(offset, range, position) of a fresh decoder: the first STATE_BITS bits read into offset."""
    offset = np.int64(0)
    for position in range(STATE_BITS):
        offset = (offset << 1) | _next_bit(bits, position, tail_bit)
    return offset, np.int64(FULL), np.int64(STATE_BITS)


@njit(cache=True, inline="always")
def _find(offset, range_, cdf, precision):
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
def _consume(offset, range_, position, bits, tail_bit, cdf, symbol, precision):
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
def _decode_rows(bits, cdfs, rows, precision):
    """symbols [n] of bits, symbol i decoded with cdfs[rows[i]] (tail bits read as 0), in one call."""
    offset, range_, position = _decoder_start(bits, 0)
    symbols = np.empty(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        cdf = cdfs[rows[i]]
        symbol = _find(offset, range_, cdf, precision)
        offset, range_, position = _consume(offset, range_, position, bits, 0, cdf, symbol, precision)
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
    return _encode_rows(cdfs, rows, symbols, int(precision))


def decode_rows(bits, cdfs, rows, precision=14):
    """symbols [n] (int64) of bits, symbol i decoded with cdfs[rows[i]]: the inverse of encode_rows."""
    check_precision(precision)
    cdfs = check_cdfs(cdfs, precision)
    rows = _check_rows(rows, cdfs.shape[0])
    return _decode_rows(_check_bits(bits), cdfs, rows, int(precision))


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
    low, range_, n_bits, _ = _encode_step(state[0], state[1], state[2], buf, cdf, symbol, precision)
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
        _point_bits(self._buf, self.n_bits, np.int64(value), int(length), out)
        return out

    def finish(self):
        """The shortest bit string whose dyadic interval lies inside the final interval."""
        return _finish(self._state[0], self._state[1], int(self._state[2]), self._buf)


@njit(cache=True)
def _consume_one(state, bits, tail_bit, cdf, symbol, precision):
    """Decoder.consume on the state array [offset, range, position]; False if the point is not in the child."""
    lo, hi = child_bounds(state[1], cdf, symbol, precision)
    if not lo <= state[0] < hi:
        return False
    state[0], state[1], state[2] = _consume(state[0], state[1], state[2], bits, tail_bit, cdf, symbol, precision)
    return True


@njit(cache=True)
def _find_one(state, cdf, precision):
    return _find(state[0], state[1], cdf, precision)


class Decoder:
    """Arithmetic decoder with ref.arithmetic.Decoder's interface: bits past the end read as `tail_bit`.

    decode(cdf) = find(cdf) then consume(cdf, symbol), split as in ref for Equal-Info's two-decoder rule.
    """

    def __init__(self, bits, precision=14, tail_bit=0):
        check_precision(precision)
        self.precision = int(precision)
        self.bits = _check_bits(bits)
        self.tail_bit = int(tail_bit)
        self._state = np.array(_decoder_start(self.bits, self.tail_bit), dtype=np.int64)  # offset, range, position

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


# ---------------------------------------------------------------------------------------------------------------
# fused path: code straight from float probability rows, without building whole CDFs
#
# quantize + encode_cdfs spends most of its time on the 257 divisions per row that build the integer CDF, yet the
# encoder reads only cdf[s] and cdf[s+1] and the decoder about two entries near the symbol. The rule's cumulative
# sum C_k must still run over the whole row (its total S = C_V enters every entry), but
# cdf_k = k + min(F, floor(((C_k * F) / S) + 0.5)) is evaluated only where it is read. Same float operations in the
# same order as _quantize_rows (no fastmath: no reassociation, no FMA), so the integers and the bits are identical.
#
# What bounds it (bench/coder_speed.py, README "Backends and speed"): a 257-entry float64 row is 2 KB, so a long
# stream is read from L3/RAM at roughly a vectorised read's speed, and the rule's sum is a chain of 257 dependent
# adds per row. The kernels below keep both busy at once: rows are summed BLOCK at a time (BLOCK independent chains
# fill the adder's pipeline), each block is first read by a vectorised sign check (one sequential stream, which
# brings it into L1 for the sum), and the sum loop prefetches the block after next, so the memory traffic of later
# rows overlaps the arithmetic of this one.


@intrinsic
def _prefetch(typingctx, array, index):
    """Hint the CPU to start loading array[index] into cache (llvm.prefetch; read, keep in L2). No effect on values.

    Numba has no prefetch of its own. A prefetch never faults, so an index past the end would be harmless, but the
    callers clamp it anyway.
    """
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        handle = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, handle, [args[1]], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        # arguments: address, 0 = read, locality 2 (L2 and outer caches), 1 = data cache
        builder.call(function, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0), ir.Constant(i32, 2),
                                ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@njit(cache=True, inline="always")
def _cdf_entry(cumulative_k, k, total, n_symbols, precision):
    """cdf_k of the quantize rule from C_k (k = 0..V), in _quantize_rows's exact operation order."""
    if k == n_symbols:
        return np.int64(1) << precision
    if k == 0:
        return np.int64(0)
    top = (1 << precision) - n_symbols
    free = float(top)
    share = np.floor((cumulative_k * free) / total + 0.5)
    return (top if share >= free else np.int64(share)) + k


BLOCK = 8  # rows summed side by side: one row's sum is a chain of V dependent adds; eight chains fill the adders


@njit(cache=True)
def _any_negative(probs, begin, end):
    """True if rows begin..end-1 hold a negative entry (-0.0 is not negative).

    Not inlined and written as an integer count so that LLVM vectorises it; it runs just before the block's sum
    and, reading the block as one sequential stream, also brings it into L1 for that sum. NaN and infinities need
    no test here: they make the row's total non-finite, which _row_ok checks.
    """
    count = 0
    for r in range(begin, end):
        row = probs[r]
        for k in range(row.shape[0]):
            count += np.int64(np.float64(row[k]) < 0.0)
    return count != 0


@njit(cache=True, inline="always")
def _cumulate_block(probs, first, cumulative, totals):
    """Rule sums of rows first..first+7 side by side: cumulative[k, j] = C_{k+1} of row first+j, totals[j] = S.

    Each row is still summed sequentially left to right in float64 (the rule; float32 entries widen exactly);
    interleaving eight independent rows only hides the add latency that bounds a single row. Rows past the end
    repeat the last row (harmless, ignored). The layout [k, j] keeps one k's eight stores in one cache line.
    """
    last = probs.shape[0] - 1
    row0, row1, row2, row3 = probs[min(first, last)], probs[min(first + 1, last)], \
        probs[min(first + 2, last)], probs[min(first + 3, last)]
    row4, row5, row6, row7 = probs[min(first + 4, last)], probs[min(first + 5, last)], \
        probs[min(first + 6, last)], probs[min(first + 7, last)]
    flat = probs.reshape(-1)
    ahead, end = (first + 2 * BLOCK) * probs.shape[1], flat.shape[0] - 1  # the block after next, as one stream
    sum0 = sum1 = sum2 = sum3 = sum4 = sum5 = sum6 = sum7 = 0.0
    for k in range(probs.shape[1]):
        _prefetch(flat, min(ahead + BLOCK * k, end))  # BLOCK * V entries ahead over V steps: the whole block
        sum0, sum1 = sum0 + np.float64(row0[k]), sum1 + np.float64(row1[k])
        sum2, sum3 = sum2 + np.float64(row2[k]), sum3 + np.float64(row3[k])
        sum4, sum5 = sum4 + np.float64(row4[k]), sum5 + np.float64(row5[k])
        sum6, sum7 = sum6 + np.float64(row6[k]), sum7 + np.float64(row7[k])
        out = cumulative[k]
        out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7] = sum0, sum1, sum2, sum3, sum4, sum5, sum6, sum7
    totals[0], totals[1], totals[2], totals[3] = sum0, sum1, sum2, sum3
    totals[4], totals[5], totals[6], totals[7] = sum4, sum5, sum6, sum7


@njit(cache=True, inline="always")
def _row_ok(total, n_symbols, precision):
    """True if a row's total can be quantized: positive, and total * F finite (so every C_k * F is: C_k <= S).

    A False row (or a negative entry in its block) stops the kernel and the caller reruns quantize, which raises
    the row's CoderError with quantize's precedence over rows; the fused path thus fails exactly like the unfused.
    """
    return total > 0.0 and total * float((1 << precision) - n_symbols) < np.inf


@njit(cache=True)
def _encode_probs(probs, symbols, precision):
    """(bits, ok) of symbols [n] coded with quantize(probs [n, V]) rows, without building CDFs; ok False: a bad row.

    Per row only cdf_s and cdf_{s+1} are evaluated, from C_s, C_{s+1} and S; they go to the shared _encode_step as
    a 2-entry CDF with symbol 0, so the interval update is the very one encode_cdfs runs.
    """
    n_rows, n_symbols = probs.shape
    buf = np.zeros(64 + n_rows * 4, dtype=np.uint8)  # grown by _room_for_a_symbol if need be
    low, range_, n_bits = np.int64(0), np.int64(FULL), 0
    cumulative = np.empty((n_symbols, BLOCK), dtype=np.float64)
    totals = np.empty(BLOCK, dtype=np.float64)
    pair = np.empty(2, dtype=np.int64)
    for first in range(0, n_rows, BLOCK):
        stop = min(first + BLOCK, n_rows)
        if _any_negative(probs, first, stop):
            return buf[:0], False
        _cumulate_block(probs, first, cumulative, totals)
        for j in range(stop - first):
            s, total = symbols[first + j], totals[j]
            if not _row_ok(total, n_symbols, precision):
                return buf[:0], False
            below = cumulative[s - 1, j] if s > 0 else 0.0  # C_s (cdf_0 = 0 reads no sum)
            pair[0] = _cdf_entry(below, s, total, n_symbols, precision)
            pair[1] = _cdf_entry(cumulative[s, j], s + 1, total, n_symbols, precision)
            buf = _room_for_a_symbol(buf, n_bits)
            low, range_, n_bits, _ = _encode_step(low, range_, n_bits, buf, pair, 0, precision)
    return _finish(low, range_, n_bits, buf), True


@njit(cache=True)
def _search_exact(target, cumulative, total, precision):
    """(symbol, cdf[symbol], cdf[symbol+1]) by _find's binary search, evaluating the exact cdf_k at each probe.

    cumulative[k] holds C_{k+1}; the ends cdf_0 = 0 and cdf_V = 2^p are known. The fallback of _find_in_row.
    """
    n_symbols = cumulative.shape[0]
    lo, hi = 0, n_symbols  # invariant: cdf_lo <= target < cdf_hi
    cdf_lo, cdf_hi = np.int64(0), np.int64(1) << precision
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        cdf_mid = _cdf_entry(cumulative[mid - 1], mid, total, n_symbols, precision)
        if cdf_mid <= target:
            lo, cdf_lo = mid, cdf_mid
        else:
            hi, cdf_hi = mid, cdf_mid
    return lo, cdf_lo, cdf_hi


@njit(cache=True, inline="always")
def _find_in_row(offset, range_, cumulative, total, precision):
    """(symbol, cdf[symbol], cdf[symbol+1]): _find's answer for the row's quantized CDF, cumulative[k] = C_{k+1}.

    An exact binary search costs a division per probe, each waiting on the last. Instead a division-free guess:
    a_k = k + C_k * (F / S) is within about 0.5 of cdf_k and non-decreasing in k, so a branchless binary search for
    the largest k with a_k <= target lands on the answer or next to it. The guess is then checked with the exact
    rule (cdf_k <= target < cdf_{k+1}, two independent divisions); if the check fails -- a neighbour, or a row whose
    F / S is not finite (a subnormal total) -- the exact search decides. The guess only saves time: the answer is
    always the exact rule's, the same as _find on quantize's CDF.
    """
    n_symbols = cumulative.shape[0]
    target = (((offset + 1) << precision) - 1) // range_
    scale, goal = float((1 << precision) - n_symbols) / total, float(target)
    guess, step = 0, 1
    while 2 * step < n_symbols:
        step *= 2
    while step > 0:  # largest k in 0..V-1 with a_k <= target (a_0 = 0 <= target)
        probe = guess + step
        inside = min(probe, n_symbols - 1)
        guess = probe if probe < n_symbols and cumulative[inside - 1] * scale + probe <= goal else guess
        step >>= 1
    below = cumulative[guess - 1] if guess > 0 else 0.0
    cdf_lo = _cdf_entry(below, guess, total, n_symbols, precision)
    cdf_hi = _cdf_entry(cumulative[guess], guess + 1, total, n_symbols, precision)
    if cdf_lo <= target < cdf_hi:
        return guess, cdf_lo, cdf_hi
    return _search_exact(target, cumulative, total, precision)


@njit(cache=True)
def _decode_probs(bits, probs, precision):
    """(symbols [n], ok): the inverse of _encode_probs (tail bits read as 0); ok False: a bad row.

    The rows are known up front, so their sums are taken BLOCK at a time like the encoder's; the search then
    evaluates cdf_k only near the answer.
    """
    n_rows, n_symbols = probs.shape
    offset, range_, position = _decoder_start(bits, 0)
    symbols = np.empty(n_rows, dtype=np.int64)
    cumulative = np.empty((n_symbols, BLOCK), dtype=np.float64)
    totals = np.empty(BLOCK, dtype=np.float64)
    pair = np.empty(2, dtype=np.int64)
    for first in range(0, n_rows, BLOCK):
        stop = min(first + BLOCK, n_rows)
        if _any_negative(probs, first, stop):
            return symbols[:0], False
        _cumulate_block(probs, first, cumulative, totals)
        for j in range(stop - first):
            if not _row_ok(totals[j], n_symbols, precision):
                return symbols[:0], False
            symbol, pair[0], pair[1] = _find_in_row(offset, range_, cumulative[:, j], totals[j], precision)
            offset, range_, position = _consume(offset, range_, position, bits, 0, pair, 0, precision)
            symbols[first + j] = symbol
    return symbols, True


@njit(cache=True)
def _decode_one_probs(bits, state, row, precision):
    """(symbol, ok): one symbol decoded with quantize(row) (a [V] float row); state [offset, range, position].

    For decoders that get one row per symbol (a whole-prefix model's next row depends on the symbol just
    decoded): the row's rule sum, then the same search and update as _decode_probs. ok False: a bad row, the
    state is unchanged.
    """
    n_symbols = row.shape[0]
    cumulative = np.empty(n_symbols, dtype=np.float64)
    running, negative = 0.0, False
    for k in range(n_symbols):
        value = np.float64(row[k])
        negative |= value < 0.0
        running = running + value
        cumulative[k] = running
    if negative or not _row_ok(running, n_symbols, precision):
        return -1, False
    pair = np.empty(2, dtype=np.int64)
    symbol, pair[0], pair[1] = _find_in_row(state[0], state[1], cumulative, running, precision)
    state[0], state[1], state[2] = _consume(state[0], state[1], state[2], bits, 0, pair, 0, precision)
    return symbol, True


def _raise_quantize_error(probs, precision):
    """Raise the CoderError quantize raises for probs: a fused kernel stopped at a row it cannot quantize (_row_ok).

    Rerunning quantize gives its message and its precedence over rows, so the fused path fails exactly like
    quantize + coder.
    """
    quantize(probs, precision)
    raise AssertionError("a fused kernel rejected rows that quantize accepts")


def _check_probs(probs, precision):
    """probs as a C-contiguous [n, V] float32/float64 array, after quantize's shape and precision checks."""
    probs = np.asarray(probs)
    if probs.dtype not in (np.float32, np.float64):
        probs = probs.astype(np.float64)
    if probs.ndim == 0 or probs.shape[-1] == 0:
        raise CoderError(f"probs must have a non-empty last axis, got shape {probs.shape}")
    if probs.ndim != 2:
        raise CoderError(f"probs must be [n, V] (one row per symbol), got shape {probs.shape}")
    check_precision(precision, probs.shape[1])
    return np.ascontiguousarray(probs)


def encode_probs(probs, symbols, precision=14):
    """bits (uint8 0/1) of symbols [n], symbol i coded with quantize(probs[i], precision): fused, one pass per row.

    Identical to encode_cdfs(quantize(probs, precision), symbols, precision) -- and so to ref's Encoder -- but only
    the two CDF entries the coder reads are computed. probs [n, V] float32 or float64 (other dtypes are converted),
    unnormalised rows allowed; the same CoderErrors as quantize (non-finite, negative, zero-sum or too-large rows).
    float32 rows are widened to float64 exactly, as quantize does, so they code like the same values in float64.
    """
    probs = _check_probs(probs, precision)
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or (symbols.size and not np.issubdtype(symbols.dtype, np.integer)):
        raise CoderError(f"symbols must be a 1-D integer array, got {symbols.dtype} {symbols.shape}")
    if len(symbols) != len(probs):
        raise CoderError(f"probs {probs.shape} and symbols {symbols.shape} must have the same length")
    symbols = symbols.astype(np.int64)
    bad = (symbols < 0) | (symbols >= probs.shape[1])
    if bad.any():
        raise CoderError(f"symbol {int(symbols[bad][0])} out of range for a CDF over {probs.shape[1]} symbols")
    bits, ok = _encode_probs(probs, symbols, int(precision))
    if not ok:
        _raise_quantize_error(probs, precision)
    return bits


def decode_probs(bits, probs, precision=14):
    """symbols [n] (int64) of bits decoded with quantize(probs[i], precision) rows: the inverse of encode_probs.

    Equal to decode_cdfs(bits, quantize(probs, precision), precision); each row's CDF entries are evaluated only
    where the binary search probes. The rows must be known up front (a model whose next row depends on the decoded
    symbol needs the per-symbol path, fast.cpu.ac.decompress).
    """
    probs = _check_probs(probs, precision)
    bits = _check_bits(bits)
    symbols, ok = _decode_probs(bits, probs, int(precision))
    if not ok:
        _raise_quantize_error(probs, precision)
    return symbols


def decode_one_probs(bits, state, row, precision=14):
    """One symbol decoded with quantize(row) ([V] floats), state [offset, range, position] (int64) updated in place.

    The per-symbol fused step for decoders whose next row depends on the symbol just decoded (fast.cpu.ac with a
    whole-prefix model); state starts as np.array(_decoder_start(bits, 0)). Same symbol and state as _find and
    _consume on quantize(row); a row quantize rejects raises its CoderError.
    """
    row = np.asarray(row)
    if row.dtype not in (np.float32, np.float64):
        row = row.astype(np.float64)
    symbol, ok = _decode_one_probs(bits, state, row, int(precision))
    if not ok:
        _raise_quantize_error(row[None], precision)
    return int(symbol)
