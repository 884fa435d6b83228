"""Plain arithmetic coding of a whole symbol sequence with one model context (the paper's AC[v]).

The model sees the sequence from BOS on, with no reset; the output is the shortest bit string whose dyadic interval
lies inside the final interval (ref.arithmetic.Encoder.finish). The bit string carries no length: the decoder is
told how many symbols to read (files store it in their header).
"""
import numpy as np

from ref.arithmetic import Decoder, Encoder, check_precision
from ref.cursor import CdfCursor
from ref.symbols import N_SYMBOLS, check_symbols


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
    """The first n_symbols symbols coded in `bits` (int64)."""
    check_precision(precision, N_SYMBOLS)
    cursor = CdfCursor(model, precision)
    decoder = Decoder(bits, precision)
    symbols = np.zeros(int(n_symbols), dtype=np.int64)
    for index in range(int(n_symbols)):
        symbols[index] = decoder.decode(cursor.cdf())
        cursor.push(symbols[index])
    return symbols
