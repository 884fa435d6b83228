"""Plain arithmetic coding of a whole symbol sequence with one model context (the paper's AC[v]).

The model sees the sequence from BOS on, with no reset; the output is the shortest bit string whose dyadic interval
lies inside the final interval (ref.arithmetic.Encoder.finish). The bit string carries no length: the decoder is
told how many symbols to read (files store it in their header).
"""
import numpy as np

from equalinfo.ref.arithmetic import STATE_BITS, CoderError, Decoder, Encoder, check_precision
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.symbols import N_SYMBOLS, check_symbols


def compress(symbols, model, precision=14):
    """bits (uint8 0/1) of the whole sequence coded with `model`."""
    symbols = check_symbols(symbols)
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    cursor.prefetch(symbols[:-1])  # the encoder knows the text: one model call can give every row
    encoder = Encoder(precision)
    for symbol in symbols:
        encoder.encode(cursor.cdf(), symbol)
        cursor.push(symbol)
    return encoder.finish()


def decompress(bits, model, n_symbols, precision=14):
    """The first n_symbols symbols coded in `bits` (int64).

    The decoder reads one bit per doubling of its range, as the encoder wrote one, so decoding real data never
    reads more than STATE_BITS bits past the end of `bits`; a decoder that does is decoding symbols the bits do not
    hold (a wrong n_symbols), and stops with a CoderError instead of running on.
    """
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    decoder = Decoder(bits, precision)
    symbols = np.zeros(int(n_symbols), dtype=np.int64)
    for index in range(int(n_symbols)):
        symbols[index] = decoder.decode(cursor.cdf())
        cursor.push(symbols[index])
        if decoder.position > len(decoder.bits) + STATE_BITS:
            raise CoderError(f"the bits end before symbol {index} of the {int(n_symbols)} expected")
    return symbols
