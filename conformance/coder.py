"""Family `coder`: sequences of integer CDFs and symbols -> bits (ref.arithmetic.Encoder) and back (Decoder).

Cases: the empty sequence, typical and atypical symbols at precisions 8..16 and widths 2..257, runs of near-certain
symbols (many symbols per output bit), runs of the rarest symbols (precision bits each), sequences with many and
long carries, and final flushes of 0, 1 and 2 bits past the emitted ones. Each case records how many carries the
encoder propagated, the longest one, and how many bits `finish` added, so a port can see which paths it ran.
"""
import numpy as np

NAME = "coder"
SEED = 1402


def _counting_encoder(precision):
    from equalinfo.ref.arithmetic import Encoder

    class CountingEncoder(Encoder):
        """ref's encoder, counting carries and their lengths (bits changed) for the case description."""

        def __init__(self, precision):
            super().__init__(precision)
            self.carries = []

        def _carry(self):
            position, length = len(self.bits) - 1, 1
            while self.bits[position] == 1:
                position, length = position - 1, length + 1
            self.carries.append(length)
            super()._carry()

    return CountingEncoder(precision)


def _random_cdfs(rng, n, n_symbols, precision, concentration):
    from equalinfo.ref.arithmetic import quantize

    return quantize(rng.dirichlet(np.full(n_symbols, concentration), size=n), precision)


def _sample(rng, cdfs, typical):
    """One symbol per CDF: drawn from it (typical) or uniformly (atypical)."""
    if not typical:
        return rng.integers(0, cdfs.shape[1] - 1, size=len(cdfs))
    points = rng.integers(0, cdfs[:, -1])
    return np.array([np.searchsorted(cdf, point, side="right") - 1 for cdf, point in zip(cdfs, points)])


def _encode(cdfs, rows, symbols, precision):
    encoder = _counting_encoder(precision)
    for row, symbol in zip(rows, symbols):
        encoder.encode(cdfs[row], int(symbol))
    emitted = encoder.n_bits
    bits = encoder.finish()
    return bits, encoder.carries, len(bits) - emitted


def _candidates(rng):
    """(name, precision, cdfs, rows, symbols) of every kind of case; symbol i is coded with cdfs[rows[i]]."""
    from equalinfo.ref.arithmetic import quantize

    yield "empty", 14, quantize(np.ones((1, 2)), 14), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    yield "one-symbol", 8, quantize(np.array([[0.25, 0.5, 0.25]]), 8), np.array([0]), np.array([1])
    for precision in (8, 11, 14, 16):
        for n_symbols in (2, 5, 257 if precision >= 9 else 256):
            cdfs = _random_cdfs(rng, 24, n_symbols, precision, 0.3)
            yield f"typical-{n_symbols}", precision, cdfs, np.arange(24), _sample(rng, cdfs, True)
            yield f"atypical-{n_symbols}", precision, cdfs, np.arange(24), _sample(rng, cdfs, False)
    certain = quantize(np.where(np.arange(257) == 7, 1.0, 0.0)[None], 14)
    yield "near-certain-run", 14, certain, np.zeros(400, dtype=np.int64), np.full(400, 7)
    rarest = quantize(np.where(np.arange(257) == 0, 1.0, 0.0)[None], 16)
    yield "rarest-run", 16, rarest, np.zeros(40, dtype=np.int64), np.full(40, 256)  # 16 bits per symbol


def build():
    rng = np.random.default_rng(SEED)
    kept, arrays, flushes = [], {}, set()
    candidates = list(_candidates(rng))
    for _ in range(200):  # extra random cases, searched for carries and flush lengths
        precision = int(rng.integers(8, 17))
        n = int(rng.integers(20, 120))
        cdfs = _random_cdfs(rng, n, int(rng.choice([2, 3, 20])), precision, 0.5)
        candidates.append(("carry-search", precision, cdfs, np.arange(n), _sample(rng, cdfs, True)))
    best_carry = None
    for name, precision, cdfs, rows, symbols in candidates:
        bits, carries, flush = _encode(cdfs, rows, symbols, precision)
        case = (name, precision, cdfs, rows, symbols, bits, carries, flush)
        if name == "carry-search":
            if best_carry is None or (len(carries), max(carries, default=0)) > (len(best_carry[6]),
                                                                               max(best_carry[6], default=0)):
                best_carry = case
            if flush not in flushes:
                flushes.add(flush)
                kept.append(("flush-" + str(flush), *case[1:]))
            continue
        flushes.add(flush)
        kept.append(case)
    kept.append(("many-carries", *best_carry[1:]))
    cases = []
    for number, (name, precision, cdfs, rows, symbols, bits, carries, flush) in enumerate(kept):
        key = f"{number:03d}"
        arrays.update({f"cdfs.{key}": cdfs, f"rows.{key}": rows, f"symbols.{key}": symbols, f"bits.{key}": bits})
        cases.append({"id": key, "name": name, "precision": precision, "n_symbols": int(len(symbols)),
                      "alphabet": int(cdfs.shape[1] - 1), "n_bits": int(len(bits)), "carries": len(carries),
                      "longest_carry": max(carries, default=0), "flush_bits": flush})
    description = {
        "family": NAME,
        "coder": "46-bit state [low, low + range), children by floor(range * cdf / 2^precision), renormalise while "
                 "range <= 2^45, carries into emitted bits, finish = shortest dyadic cell inside the final interval",
        "arrays": {"cdfs.ID": "<i8 [R, V+1] CDFs", "rows.ID": "<i8 [n] symbol i is coded with cdfs[rows[i]]",
                   "symbols.ID": "<i8 [n]", "bits.ID": "|u1 [n_bits] 0/1, most significant first"},
        "cases": cases,
    }
    return description, arrays


def check(description, arrays, impl, tally):
    coder = impl.arithmetic
    for case in description["cases"]:
        key, precision = case["id"], case["precision"]
        where = f"case {key} ({case['name']}, precision {precision})"
        table, rows = arrays[f"cdfs.{key}"], arrays[f"rows.{key}"]
        symbols, bits = arrays[f"symbols.{key}"], arrays[f"bits.{key}"]
        cdfs = table[rows]  # [n, V+1]

        def encode():
            encoder = coder.Encoder(precision)
            for cdf, symbol in zip(cdfs, symbols):
                encoder.encode(cdf, int(symbol))
            return encoder.finish()

        def decode():
            decoder = coder.Decoder(bits, precision)
            return np.array([decoder.decode(cdf) for cdf in cdfs], dtype=np.int64)

        got = tally.call(where, "Encoder", encode)
        if got is not None:
            tally.same(got, bits, where, "Encoder bits")
        got = tally.call(where, "Decoder", decode)
        if got is not None:
            tally.same(got, symbols, where, "decoded symbols")
        if hasattr(coder, "encode_rows") and len(symbols):  # fast.cpu's whole-stream kernels
            got = tally.call(where, "encode_rows", coder.encode_rows, table, rows, symbols, precision)
            if got is not None:
                tally.same(got, bits, where, "encode_rows bits")
            got = tally.call(where, "decode_rows", coder.decode_rows, bits, table, rows, precision)
            if got is not None:
                tally.same(got, symbols, where, "decode_rows symbols")


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(description, arrays):
    """(description, arrays, expected): every array is asked (decoding needs the bits); the answers are encode.ID
    (the bits of coding symbols.ID with cdfs.ID[rows.ID]) and decode.ID (the symbols decoded from bits.ID)."""
    expected = {}
    for case in description["cases"]:
        key = case["id"]
        expected.update({f"encode.{key}": arrays[f"bits.{key}"], f"decode.{key}": arrays[f"symbols.{key}"]})
    return description, arrays, expected


def answer(description, arrays, impl):
    coder, answers = impl.arithmetic, {}
    for case in description["cases"]:
        key, precision = case["id"], case["precision"]
        cdfs = arrays[f"cdfs.{key}"][arrays[f"rows.{key}"]]  # [n, V+1]
        encoder = coder.Encoder(precision)
        for cdf, symbol in zip(cdfs, arrays[f"symbols.{key}"]):
            encoder.encode(cdf, int(symbol))
        decoder = coder.Decoder(arrays[f"bits.{key}"], precision)
        answers[f"encode.{key}"] = encoder.finish()
        answers[f"decode.{key}"] = [decoder.decode(cdf) for cdf in cdfs]
    return answers
