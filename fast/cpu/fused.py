"""Coding straight from float probability rows, without building whole CDFs: quantize + coder in one pass.

    encode_probs(probs [n, V], symbols [n], precision) -> bits
    symbol_cells(probs [n, V], symbols [n], precision) -> cells [n, 2]; encode_cells(cells, precision) -> bits
    decode_probs(bits, probs [n, V], precision) -> symbols [n]          (rows known up front)
    decode_one_probs(bits, state, row [V], precision) -> symbol         (one row per call; state updated in place)
Each gives the integers, bits and CoderErrors of fast.cpu.arithmetic.quantize followed by its coder (hence of ref),
for float32 or float64 rows. fast/cpu/ac.py codes whole-prefix models (M1) through it.

quantize + encode_cdfs spends most of its time on the 257 divisions per row that build the integer CDF, yet the
encoder reads only cdf[s] and cdf[s+1] and the decoder about two entries near the symbol. The rule's cumulative
sum C_k must still run over the whole row (its total S = C_V enters every entry), but
cdf_k = k + min(F, floor(((C_k * F) / S) + 0.5)) is evaluated only where it is read. Same float operations in the
same order as quantize (no fastmath: no reassociation, no FMA), so the integers and the bits are identical; the
coding steps are fast/cpu/arithmetic.py's kernel API.

What bounds it (bench/coder_speed.py; figures in bench/README.md): a 257-entry float64 row is 2 KB, so a long
stream is read from L3/RAM at roughly a vectorised read's speed, and the rule's sum is a chain of 257 dependent
adds per row. The kernels below keep both busy at once: rows are summed BLOCK at a time (BLOCK independent chains
fill the adder's pipeline), each block is first read by a vectorised sign check (one sequential stream, which
brings it into L1 for the sum), and the sum loop prefetches the block after next, so the memory traffic of later
rows overlaps the arithmetic of this one.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from equalinfo.fast.cpu.arithmetic import (FULL, CoderError, check_bits, check_precision, consume, decoder_start,
    encode_step, finish_bits, quantize, room_for_a_symbol)

__all__ = ["encode_probs", "symbol_cells", "encode_cells", "decode_probs", "decode_one_probs"]


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
def _symbol_cells(probs, symbols, precision):
    """(cells [n, 2], ok): cdf_s and cdf_{s+1} of quantize(probs[i]) for s = symbols[i], without building CDFs;
    ok False: a bad row (the caller reruns quantize for its error).

    Per row only the two entries the encoder reads are evaluated, from C_s, C_{s+1} and S. Coding cell i as a
    2-entry CDF with symbol 0 is then the very interval update encode_cdfs runs with the whole CDF.
    """
    n_rows, n_symbols = probs.shape
    cells = np.empty((n_rows, 2), dtype=np.int64)
    cumulative = np.empty((n_symbols, BLOCK), dtype=np.float64)
    totals = np.empty(BLOCK, dtype=np.float64)
    for first in range(0, n_rows, BLOCK):
        stop = min(first + BLOCK, n_rows)
        if _any_negative(probs, first, stop):
            return cells[:0], False
        _cumulate_block(probs, first, cumulative, totals)
        for j in range(stop - first):
            s, total = symbols[first + j], totals[j]
            if not _row_ok(total, n_symbols, precision):
                return cells[:0], False
            below = cumulative[s - 1, j] if s > 0 else 0.0  # C_s (cdf_0 = 0 reads no sum)
            cells[first + j, 0] = _cdf_entry(below, s, total, n_symbols, precision)
            cells[first + j, 1] = _cdf_entry(cumulative[s, j], s + 1, total, n_symbols, precision)
    return cells, True


@njit(cache=True)
def _encode_cells(cells, precision):
    """bits of the symbols whose cells [n, 2] (_symbol_cells) are given, in order."""
    buf = np.zeros(64 + cells.shape[0] * 4, dtype=np.uint8)  # grown by room_for_a_symbol if need be
    low, range_, n_bits = np.int64(0), np.int64(FULL), 0
    for i in range(cells.shape[0]):
        buf = room_for_a_symbol(buf, n_bits)
        low, range_, n_bits, _ = encode_step(low, range_, n_bits, buf, cells[i], 0, precision)
    return finish_bits(low, range_, n_bits, buf)


@njit(cache=True)
def _search_exact(target, cumulative, total, precision):
    """(symbol, cdf[symbol], cdf[symbol+1]) by find_symbol's binary search, evaluating the exact cdf_k at each probe.

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
    """(symbol, cdf[symbol], cdf[symbol+1]): find_symbol's answer for the row's quantized CDF, cumulative[k] = C_{k+1}.

    An exact binary search costs a division per probe, each waiting on the last. Instead a division-free guess:
    a_k = k + C_k * (F / S) is within about 0.5 of cdf_k and non-decreasing in k, so a branchless binary search for
    the largest k with a_k <= target lands on the answer or next to it. The guess is then checked with the exact
    rule (cdf_k <= target < cdf_{k+1}, two independent divisions); if the check fails -- a neighbour, or a row whose
    F / S is not finite (a subnormal total) -- the exact search decides. The guess only saves time: the answer is
    always the exact rule's, the same as find_symbol on quantize's CDF.
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
    offset, range_, position = decoder_start(bits, 0)
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
            offset, range_, position = consume(offset, range_, position, bits, 0, pair, 0, precision)
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
    state[0], state[1], state[2] = consume(state[0], state[1], state[2], bits, 0, pair, 0, precision)
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
    return encode_cells(symbol_cells(probs, symbols, precision), precision)


def symbol_cells(probs, symbols, precision=14):
    """cells [n, 2] int64: (cdf[s], cdf[s + 1]) of quantize(probs[i], precision) at s = symbols[i].

    An encoder that gets its rows in pieces (fast.cpu.ac with a long input) keeps these 16 bytes per symbol instead
    of the 2 KB row, and codes them all at the end with encode_cells; the bits are encode_probs'.
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
    cells, ok = _symbol_cells(probs, symbols, int(precision))
    if not ok:
        _raise_quantize_error(probs, precision)
    return cells


def encode_cells(cells, precision=14):
    """bits (uint8 0/1) of symbols given by their cells [n, 2] (symbol_cells), in order."""
    return _encode_cells(np.ascontiguousarray(cells, dtype=np.int64), int(precision))


def decode_probs(bits, probs, precision=14):
    """symbols [n] (int64) of bits decoded with quantize(probs[i], precision) rows: the inverse of encode_probs.

    Equal to decode_cdfs(bits, quantize(probs, precision), precision); each row's CDF entries are evaluated only
    where the binary search probes. The rows must be known up front (a model whose next row depends on the decoded
    symbol needs the per-symbol path, fast.cpu.ac.decompress).
    """
    probs = _check_probs(probs, precision)
    bits = check_bits(bits)
    symbols, ok = _decode_probs(bits, probs, int(precision))
    if not ok:
        _raise_quantize_error(probs, precision)
    return symbols


def decode_one_probs(bits, state, row, precision=14):
    """One symbol decoded with quantize(row) ([V] floats), state [offset, range, position] (int64) updated in place.

    The per-symbol fused step for decoders whose next row depends on the symbol just decoded (fast.cpu.ac with a
    whole-prefix model); state starts as np.array(decoder_start(bits, 0)). Same symbol and state as find_symbol and
    consume on quantize(row); a row quantize rejects raises its CoderError.
    """
    row = np.asarray(row)
    if row.dtype not in (np.float32, np.float64):
        row = row.astype(np.float64)
    symbol, ok = _decode_one_probs(bits, state, row, int(precision))
    if not ok:
        _raise_quantize_error(row[None], precision)
    return int(symbol)
