"""Equal-Info windows: round trips, fuzzing, the window properties checked against exact integers, bad input."""
import numpy as np
import pytest

from helpers import (WINDOW_SIZES, AdversarialModel, assert_equalinfo_input_errors, cell_inside, english_text,
                     exact_final_interval, simple_models, symbol_cases)
from equalinfo.ref import equalinfo
from equalinfo.ref.arithmetic import quantize
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import BOS, bytes_to_symbols

TRAINING, MODELS = simple_models()


def cases():
    return symbol_cases()


@pytest.mark.parametrize("window_bits", WINDOW_SIZES)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_round_trips(window_bits, model_name):
    model = MODELS[model_name]
    for name, symbols in cases().items():
        bits = equalinfo.compress(symbols, model, window_bits)
        assert bits.dtype == np.uint8 and len(bits) % window_bits == 0, name
        back = equalinfo.decompress(bits, model, window_bits, n_symbols=len(symbols))
        assert np.array_equal(back, symbols), name


def test_long_text_round_trip():
    symbols = bytes_to_symbols(english_text(200_000))
    bits = equalinfo.compress(symbols, MODELS["markov2"], 128)
    back = equalinfo.decompress(bits, MODELS["markov2"], 128, n_symbols=len(symbols))
    assert np.array_equal(back, symbols)


def window_cdfs(model, symbols, precision):
    """CDFs [len+1, 258] a fresh window sees for symbols (the model's rows, quantized directly)."""
    return quantize(model.next_probs(np.concatenate([[BOS], symbols])[None])[0], precision)


def has_cell(low, width, scale, window_bits):
    """Exact: does [low, low+width)/2^scale contain an aligned cell of width 2^-window_bits?"""
    size = 1 << max(scale - window_bits, 0)
    start = -(-low // size) * size
    return start + size <= low + width


def check_window_properties(symbols, model, windows, window_bits, precision):
    """Every property of every window, from exact integers (tests/helpers.py) rather than the encoder's state."""
    position = 0
    for window in windows:
        assert window.start == position and len(window.bits) == window_bits and window.length >= 1
        text = symbols[window.start:window.start + window.length]
        cdfs = window_cdfs(model, symbols[window.start:window.start + window.greedy_length + 1], precision)
        interval = exact_final_interval(cdfs, text, precision)
        assert cell_inside(window.bits, *interval)  # the bits name a cell inside the window's interval
        if window.delimited:  # ... that strictly contains a boundary between two possible next symbols
            low, width, scale = interval
            boundaries = [low + ((width * int(c)) >> precision) for c in cdfs[window.length][1:-1]]
            cell_start = int("".join(map(str, window.bits)), 2) << (scale - window_bits)
            cell_end = cell_start + (1 << (scale - window_bits))
            assert any(cell_start < b < cell_end for b in boundaries)
        end = window.start + window.greedy_length
        if end < len(symbols):  # greedy: one more symbol would not fit in window_bits
            longer = symbols[window.start:end + 1]
            assert not has_cell(*exact_final_interval(cdfs, longer, precision), window_bits)
        # and the window decodes alone, from its own bits
        alone = equalinfo.decode_window(window.bits, CdfCursor(model, precision), precision,
                                        limit=None if window.delimited else window.length)
        assert alone == list(text)
        position += window.length
    assert position == len(symbols)


@pytest.mark.parametrize("window_bits", WINDOW_SIZES)
def test_window_properties_on_real_text(window_bits):
    symbols = bytes_to_symbols(english_text(63_000)[60_000:])
    model = MODELS["markov2"]
    windows = equalinfo.encode_windows(symbols, model, window_bits)
    check_window_properties(symbols, model, windows, window_bits, 14)
    assert sum(not w.delimited for w in windows) <= 1  # only the input's last window may need the count


def fuzz(n_windows_wanted, seed):
    """Random models, texts, window sizes and precisions until enough windows have round-tripped."""
    rng = np.random.default_rng(seed)
    n_windows = n_failures = 0
    markov = MarkovModel.fit(rng.integers(0, 257, 5000), 2)
    while n_windows < n_windows_wanted:
        precision = int(rng.integers(9, 17))
        window_bits = int(rng.choice([precision, precision + 1, 16, 24, 32, 48, 64, 128]))
        window_bits = max(window_bits, precision)
        kind = rng.integers(4)
        if kind == 0:
            model, symbols = markov, rng.integers(0, 257, int(rng.integers(1, 300)))
        elif kind == 1:
            model = MODELS["markov2"]
            start = int(rng.integers(0, 55_000))
            symbols = TRAINING[start:start + int(rng.integers(1, 400))]
        else:
            model = AdversarialModel(["skewed", "dyadic", "dirichlet", "mixed"][rng.integers(4)],
                                     context_length=int(rng.integers(1, 3)), seed=int(rng.integers(1 << 30)))
            symbols = model.sample(int(rng.integers(1, 200)), seed=int(rng.integers(1 << 30)))
        windows = equalinfo.encode_windows(symbols, model, window_bits, precision)
        bits = np.concatenate([w.bits for w in windows])
        back = equalinfo.decompress(bits, model, window_bits, precision, n_symbols=len(symbols))
        n_failures += not np.array_equal(back, symbols)
        cursor = CdfCursor(model, precision)
        for w in windows:
            if w.delimited:  # every window but the input's last decodes alone, with no count
                alone = equalinfo.decode_window(w.bits, cursor, precision)
                n_failures += alone != list(symbols[w.start:w.start + w.length])
        n_windows += len(windows)
    return n_windows, n_failures


def test_fuzz_ten_thousand_windows():
    n_windows, n_failures = fuzz(10_000, seed=1)
    assert n_windows >= 10_000 and n_failures == 0


@pytest.mark.slow
def test_fuzz_many_windows():
    n_windows, n_failures = fuzz(200_000, seed=2)
    assert n_failures == 0


@pytest.mark.parametrize("style", ["skewed", "dyadic", "dirichlet"])
def test_window_properties_on_adversarial_models(style):
    for seed in range(3):
        model = AdversarialModel(style, context_length=2, seed=seed)
        symbols = model.sample(150, seed=seed)
        for window_bits in (14, 16, 32, 128):
            windows = equalinfo.encode_windows(symbols, model, window_bits)
            check_window_properties(symbols, model, windows, window_bits, 14)


def test_the_papers_zero_padding_is_ambiguous():
    """The plain greedy rule (shortest cell, zero padded) makes windows our decoder reads too far: the reason for
    the delimiting rule. If this ever stops failing, the guarantee tests above have lost their teeth."""
    symbols = bytes_to_symbols(english_text(63_000)[60_000:])
    model = MODELS["markov2"]
    windows = equalinfo.encode_windows(symbols, model, 16, delimit=False)
    cursor = CdfCursor(model, 14)
    misread = sum(equalinfo.decode_window(w.bits, cursor) != list(symbols[w.start:w.start + w.length])
                  for w in windows[:-1])
    assert misread > 0


def test_bad_input_raises():
    assert_equalinfo_input_errors(equalinfo, MODELS["unigram"])
