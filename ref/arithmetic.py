"""Integer arithmetic coding: probabilities -> integer CDFs -> bits, and back.

The coder is a binary arithmetic coder with a carry-propagating `low` register (a "range coder" emitting single
bits). Its whole state is an interval [low, low + range) of integers inside a *frame*: after n output bits have
been shifted out, one frame unit is worth 2^-(n + STATE_BITS) of the unit interval, and the real interval is

    [(E * 2^STATE_BITS + low) * unit,  (E * 2^STATE_BITS + low + range) * unit)

where E is the integer formed by the n bits emitted so far. Nothing else is hidden (no pending/underflow count), so
the exact interval is always known; the Equal-Info window rule (ref/equalinfo.py) relies on that.

Why these choices:
- Children tile the parent exactly: child s of [low, low+range) is [low + f(cdf[s]), low + f(cdf[s+1])) with
  f(c) = floor(range * c / 2^precision). Encoder and decoder call the same `child_bounds`, so they cannot drift.
- range is kept in (2^(STATE_BITS-1), 2^STATE_BITS] by doubling (renormalisation). Each child is then wider than
  range*p - 1, so the coding loss per symbol is below -log2(1 - 2^(precision - STATE_BITS + 1)) bits: about
  7e-10 bits per symbol at precision 14 (2e-9 at 16). This is the "tiny finite-precision overhead" the tests allow.
- STATE_BITS = 46 so that range * cdf < 2^62 for every precision up to 16: the same integers fit NumPy's and
  Numba's int64, so fast/ can reproduce this coder bit for bit.
- Output bits can be changed after emission only by a carry (+1 propagating through trailing ones); the real
  interval always lies inside [0, 1), so a carry never runs off the front.

Invariants (asserted): 0 <= low < 2^STATE_BITS, 2^(STATE_BITS-1) < range <= 2^STATE_BITS after renormalisation,
every CDF is 0 = cdf[0] < cdf[1] < ... < cdf[V] = 2^precision; in the decoder 0 <= offset < range.
"""
import numpy as np

STATE_BITS = 46
FULL = 1 << STATE_BITS
HALF = 1 << (STATE_BITS - 1)
MAX_PRECISION = 16


TOO_LARGE = ("probabilities too large to quantize: a row's sum times (2^precision - V) overflows float64; "
             "scale the row down")


class CoderError(ValueError):
    """Invalid input to the coder: a malformed CDF, a symbol out of range, an unsupported precision."""


def check_precision(precision, n_symbols=None):
    """Raise CoderError unless 1 <= precision <= 16 and (if given) n_symbols symbols fit at width >= 1."""
    if not isinstance(precision, (int, np.integer)) or not 1 <= precision <= MAX_PRECISION:
        raise CoderError(f"precision must be an integer from 1 to {MAX_PRECISION}, got {precision!r}")
    if n_symbols is not None and n_symbols > (1 << precision):
        raise CoderError(
            f"{n_symbols} symbols cannot each get width >= 1 out of 2^{precision} = {1 << precision}; "
            f"use precision >= {int(np.ceil(np.log2(n_symbols)))}")


def quantize(probs, precision=14):
    """Integer CDFs [..., V+1] of float probabilities [..., V]: the documented, deterministic rule.

    Every symbol gets width 1 (the floor of 2^-precision that makes every symbol codable), and the remaining
    F = 2^precision - V units are shared by cumulative rounding:

        C_k   = p_0 + ... + p_{k-1}          float64, summed left to right (k = 0..V; S = C_V)
        cdf_k = k + min(F, floor(C_k * F / S + 0.5))   evaluated as ((C_k * F) / S) + 0.5, IEEE float64
        cdf_V = 2^precision exactly

    Rounding the *cumulative* sum (not each probability) keeps the CDF monotone with every width >= 1, spreads the
    rounding error over all symbols (each width is off by less than one unit), and needs no sort or tie-break.
    Every step is a correctly rounded IEEE operation in a fixed order, so any backend that does the same sequence
    (sequential sum, no fused multiply-add) gets the same integers. Inputs need not be normalised; they must be
    finite, non-negative and have a positive sum, and S * F must be finite: since every C_k <= S, that keeps every
    product C_k * F finite, so the shares stay proportional (a row near the float64 maximum would otherwise turn
    C_k * F into inf and its CDF into a staircase). float32 inputs are converted to float64 exactly first.
    Each violated condition raises a CoderError, checked in this order over all rows: entries, sums, size.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 0 or probs.shape[-1] == 0:
        raise CoderError(f"probs must have a non-empty last axis, got shape {probs.shape}")
    n_symbols = probs.shape[-1]
    check_precision(precision, n_symbols)
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise CoderError("probabilities must be finite and non-negative")
    with np.errstate(over="ignore"):  # an overflowing sum is reported below, not warned about
        cumulative = np.cumsum(probs, axis=-1)  # np.cumsum is a sequential left-to-right sum along the axis
        total = cumulative[..., -1:]
        free = float((1 << precision) - n_symbols)
        too_large = not np.all(np.isfinite(total * free))
    if np.any(total <= 0):
        raise CoderError("probabilities must have a positive sum")
    if too_large:
        raise CoderError(TOO_LARGE)
    shares = np.floor((cumulative * free) / total + 0.5)
    shares = np.minimum(shares, free).astype(np.int64)
    cdf = np.zeros(probs.shape[:-1] + (n_symbols + 1,), dtype=np.int64)
    cdf[..., 1:] = shares + np.arange(1, n_symbols + 1, dtype=np.int64)
    cdf[..., -1] = 1 << precision
    return cdf


def check_integers(cdf):
    """Raise CoderError unless the CDF (or array of CDFs) holds integers."""
    if cdf.dtype.kind not in "iu":
        raise CoderError(f"a CDF must hold integers (use quantize), got dtype {cdf.dtype}")


def check_cdf(cdf, precision):
    """Raise CoderError unless cdf is a 1-D integer CDF from 0 to 2^precision with every width >= 1."""
    cdf = np.asarray(cdf)
    if cdf.ndim != 1 or cdf.shape[0] < 2:
        raise CoderError(f"a CDF must be 1-D with at least 2 entries, got shape {cdf.shape}")
    check_integers(cdf)
    if cdf[0] != 0 or cdf[-1] != (1 << precision):
        raise CoderError(f"a CDF must run from 0 to 2^{precision} = {1 << precision}, "
                         f"got {int(cdf[0])} .. {int(cdf[-1])}")
    widths = cdf[1:].astype(np.int64) - cdf[:-1]  # int64 so that unsigned input cannot wrap around
    if widths.min() <= 0:
        symbol = int(np.flatnonzero(widths <= 0)[0])
        kind = "zero-width" if widths[symbol] == 0 else "non-monotone"
        raise CoderError(f"{kind} CDF at symbol {symbol}: every symbol needs width >= 1")


def child_bounds(range_, cdf, symbol, precision):
    """Offsets (lo, hi) of child `symbol` inside [0, range_): the one interval update encoder and decoder share."""
    lo = (range_ * int(cdf[symbol])) >> precision
    hi = (range_ * int(cdf[symbol + 1])) >> precision
    return lo, hi


def needs_doubling(range_):
    """Renormalisation test shared by encoder and decoder: double while range <= 2^(STATE_BITS-1)."""
    return range_ <= HALF


class Encoder:
    """Arithmetic encoder: encode(cdf, symbol) repeatedly, then finish() -> bits (uint8 0/1, MSB first).

    `bits`, `low` and `range` are public because Equal-Info windows read the exact interval (module docstring).
    """

    def __init__(self, precision=14):
        check_precision(precision)
        self.precision = precision
        self.low = 0
        self.range = FULL
        self.bits = []  # emitted bits; only a carry can change them later

    def copy(self):
        twin = Encoder(self.precision)
        twin.low, twin.range, twin.bits = self.low, self.range, list(self.bits)
        return twin

    def encode(self, cdf, symbol):
        check_cdf(cdf, self.precision)
        if not 0 <= symbol < len(cdf) - 1:
            raise CoderError(f"symbol {symbol} out of range for a CDF over {len(cdf) - 1} symbols")
        lo, hi = child_bounds(self.range, cdf, symbol, self.precision)
        self.low += lo
        self.range = hi - lo
        if self.low >= FULL:
            self._carry()
            self.low -= FULL
        while needs_doubling(self.range):
            self.bits.append(self.low >> (STATE_BITS - 1))
            self.low = (self.low << 1) & (FULL - 1)
            self.range <<= 1
        assert 0 <= self.low < FULL and HALF < self.range <= FULL

    def _carry(self):
        """Add one at the last emitted bit: trailing ones become zeros, the last zero becomes one."""
        position = len(self.bits) - 1
        while self.bits[position] == 1:
            self.bits[position] = 0
            position -= 1
        self.bits[position] = 1

    @property
    def n_bits(self):
        return len(self.bits)

    def point_bits(self, value, length):
        """Bits [length] of the point whose frame position is `value` (an integer, may carry past the frame).

        The result is the first `length` bits of (E * 2^STATE_BITS + value) * unit, truncated; `length` must be at
        least the number of bits emitted so far. The encoder is not modified.
        """
        extra = length - len(self.bits)
        assert extra >= 0, "cannot describe a point with fewer bits than already emitted"
        head = list(self.bits)
        if extra <= STATE_BITS:
            tail_value = value >> (STATE_BITS - extra)
        else:
            tail_value = value << (extra - STATE_BITS)
        if tail_value >> extra:  # the point lies past the frame: carry into the emitted bits
            twin = self.copy()
            twin._carry()
            head = twin.bits
            tail_value -= 1 << extra
        tail = [(tail_value >> (extra - 1 - i)) & 1 for i in range(extra)]
        return np.array(head + tail, dtype=np.uint8)

    def finish(self):
        """The shortest bit string whose dyadic interval lies inside the final interval.

        With range > 2^(STATE_BITS-1) at most 2 bits beyond the emitted ones are needed, so the output is at most
        2 bits longer than -log2(final width), which is itself within the tiny overhead (module docstring) of the
        ideal code length -sum log2 p.
        """
        for extra in range(0, 3):
            cell = 1 << (STATE_BITS - extra)
            start = -(-self.low // cell) * cell
            if start + cell <= self.low + self.range:
                return self.point_bits(start, len(self.bits) + extra)
        raise AssertionError("unreachable: an interval wider than half the frame holds a quarter-frame cell")


class Decoder:
    """Arithmetic decoder over a fixed bit string; bits past its end read as `tail_bit` (0 by default).

    decode(cdf) = find(cdf) then consume(cdf, symbol). The split lets Equal-Info windows run two decoders in
    lockstep (tail 0 and tail 1) and stop where they disagree, without advancing either.
    """

    def __init__(self, bits, precision=14, tail_bit=0):
        check_precision(precision)
        self.precision = precision
        self.bits = np.asarray(bits, dtype=np.uint8)
        if self.bits.ndim != 1 or np.any(self.bits > 1):
            raise CoderError("bits must be a 1-D array of 0/1 values")
        self.tail_bit = int(tail_bit)
        self.position = 0  # next bit to read
        self.range = FULL
        self.offset = 0  # (the point, truncated to the frame) - low
        for _ in range(STATE_BITS):
            self.offset = (self.offset << 1) | self._next_bit()

    def _next_bit(self):
        bit = int(self.bits[self.position]) if self.position < len(self.bits) else self.tail_bit
        self.position += 1
        return bit

    def find(self, cdf):
        """The symbol whose child interval holds the point (state unchanged)."""
        check_cdf(cdf, self.precision)
        # floor(range * c / 2^p) <= offset  <=>  c <= ((offset + 1) << p) - 1) // range
        target = (((self.offset + 1) << self.precision) - 1) // self.range
        return int(np.searchsorted(cdf, target, side="right")) - 1

    def consume(self, cdf, symbol):
        lo, hi = child_bounds(self.range, cdf, symbol, self.precision)
        assert lo <= self.offset < hi, "the point is not inside the chosen child"
        self.offset -= lo
        self.range = hi - lo
        while needs_doubling(self.range):
            self.range <<= 1
            self.offset = (self.offset << 1) | self._next_bit()
        assert 0 <= self.offset < self.range and HALF < self.range <= FULL

    def decode(self, cdf):
        symbol = self.find(cdf)
        self.consume(cdf, symbol)
        return symbol
