"""Plain AC over whole sequences: round trips on every kind of input, and the ideal-length oracle."""
import math

import numpy as np
import pytest

from helpers import cell_inside, english_text, exact_final_interval, ideal_bits, simple_models, symbol_cases
from equalinfo.ref import ac
from equalinfo.ref.arithmetic import STATE_BITS, quantize
from equalinfo.ref.symbols import BOS, bytes_to_symbols

TRAINING, MODELS = simple_models()


def cases():
    return symbol_cases(n_random=3000)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("case", sorted(cases()))
def test_round_trip(model_name, case):
    symbols = cases()[case]
    model = MODELS[model_name]
    bits = ac.compress(symbols, model)
    assert bits.dtype == np.uint8 and set(np.unique(bits)) <= {0, 1}
    assert np.array_equal(ac.decompress(bits, model, len(symbols)), symbols)


def test_long_text_round_trip():
    symbols = bytes_to_symbols(english_text(200_000))
    bits = ac.compress(symbols, MODELS["markov2"])
    assert np.array_equal(ac.decompress(bits, MODELS["markov2"], len(symbols)), symbols)


def test_length_matches_the_ideal_and_the_exact_interval():
    model = MODELS["markov2"]
    symbols = bytes_to_symbols(english_text(65_000)[60_000:])
    bits = ac.compress(symbols, model)
    cdfs = quantize(model.next_probs(np.concatenate([[BOS], symbols[:-1]])[None])[0], 14)
    ideal = ideal_bits(cdfs, symbols, 14)
    overhead = len(symbols) * -math.log2(1 - 2.0 ** (14 - STATE_BITS + 1))
    assert ideal <= len(bits) <= ideal + 2 + overhead
    assert cell_inside(bits, *exact_final_interval(cdfs, symbols, 14))


def test_bad_symbols_raise():
    with pytest.raises(ValueError, match="symbol 257 at position 1"):
        ac.compress(np.array([1, 257]), MODELS["unigram"])
    with pytest.raises(ValueError, match="1-D integer"):
        ac.compress(np.array([[1, 2]]), MODELS["unigram"])
