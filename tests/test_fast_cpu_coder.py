"""fast.cpu coder vs ref: the same CDFs, the same bits, the same windows, the same errors; batched == one at a time."""
import re

import numpy as np
import pytest

from helpers import (WINDOW_SIZES, AdversarialModel, assert_equalinfo_input_errors, english_text, simple_models,
                     symbol_cases, unseen_text)
from equalinfo.fast.cpu import ac as fast_ac
from equalinfo.fast.cpu import arithmetic as fast_arith
from equalinfo.fast.cpu import equalinfo as fast_ei
from equalinfo.ref import ac as ref_ac
from equalinfo.ref import arithmetic as ref_arith
from equalinfo.ref import equalinfo as ref_ei
from equalinfo.ref.arithmetic import CoderError
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import EOS, bytes_to_symbols

TRAINING, MODELS = simple_models()
MODELS["adversarial"] = AdversarialModel("mixed", context_length=2, seed=5)
UNSEEN = unseen_text()


class WholePrefixMarkov(MarkovModel):
    """A Markov model that claims context_length None: drives the whole-prefix (M1) code paths."""

    def __init__(self, base):
        super().__init__(base.order, base.context_ids, base.counts)
        self.context_length = None


def extreme_rows(rng):
    """Rows that stress the float rule: one-hot, huge and tiny scales, subnormals, ties, dyadic values."""
    rows = [np.eye(257)[3], np.full(257, 1e-300), np.full(257, 1e300), np.full(257, 5e-324),
            np.r_[1.0, np.full(256, 1e-17)], 2.0 ** -rng.integers(0, 60, 257).astype(float),
            rng.integers(0, 3, 257).astype(float) + np.eye(257)[0], np.arange(257, dtype=float) ** 4]
    return np.array(rows)


def test_quantize_identical_to_ref():
    rng = np.random.default_rng(0)
    for precision in range(9, 17):
        for concentration in (0.005, 0.1, 1.0, 50.0):
            probs = rng.dirichlet(np.full(257, concentration), size=300) * rng.uniform(0.1, 10, (300, 1))
            assert np.array_equal(fast_arith.quantize(probs, precision), ref_arith.quantize(probs, precision))
            probs32 = probs.astype(np.float32)
            assert np.array_equal(fast_arith.quantize(probs32, precision), ref_arith.quantize(probs32, precision))
        rows = extreme_rows(rng)
        assert np.array_equal(fast_arith.quantize(rows, precision), ref_arith.quantize(rows, precision))
    small = rng.dirichlet(np.ones(5), size=(3, 4))  # any leading shape, few symbols, low precision
    assert np.array_equal(fast_arith.quantize(small, 3), ref_arith.quantize(small, 3))


def random_stream(rng, precision, n):
    """Random CDFs [n, V+1] (V = 257, or fewer where 2^precision < 257) and symbols drawn from them."""
    n_symbols = min(257, (1 << precision) // 2)
    probs = rng.dirichlet(np.full(n_symbols, rng.choice([0.02, 0.3, 3.0])), size=n)
    cdfs = ref_arith.quantize(probs, precision)
    symbols = np.array([rng.choice(n_symbols, p=row / row.sum()) for row in probs])
    return cdfs, symbols


@pytest.mark.parametrize("precision", list(range(8, 17)))
def test_coder_bits_identical_to_ref(precision):
    rng = np.random.default_rng(precision)
    for n in (0, 1, 2, 300):
        cdfs, symbols = random_stream(rng, precision, n)
        encoder, fast_encoder = ref_arith.Encoder(precision), fast_arith.Encoder(precision)
        for cdf, symbol in zip(cdfs, symbols):
            encoder.encode(cdf, int(symbol))
            fast_encoder.encode(cdf, int(symbol))
            assert (fast_encoder.low, fast_encoder.range, fast_encoder.n_bits) == (
                encoder.low, encoder.range, encoder.n_bits)
        bits = encoder.finish()
        assert np.array_equal(fast_encoder.finish(), bits)
        assert np.array_equal(fast_arith.encode_cdfs(cdfs, symbols, precision), bits)
        assert np.array_equal(fast_arith.decode_cdfs(bits, cdfs, precision), symbols)
        decoder = fast_arith.Decoder(bits, precision)
        assert [decoder.decode(cdf) for cdf in cdfs] == list(symbols)
        # the point_bits the window rule uses, at values inside and past the frame and lengths past STATE_BITS
        for value in (encoder.low, encoder.low + encoder.range - 1):  # may carry past the frame
            for extra in (0, 5, 60):
                length = encoder.n_bits + extra
                assert np.array_equal(fast_encoder.point_bits(value, length), encoder.point_bits(value, length))


def test_rows_kernel_matches_one_cdf_per_symbol():
    rng = np.random.default_rng(3)
    table = ref_arith.quantize(rng.dirichlet(np.full(257, 0.2), size=50), 14)
    rows = rng.integers(0, 50, 2000)
    symbols = np.array([rng.choice(257, p=np.diff(table[r]) / (1 << 14)) for r in rows])
    bits = fast_arith.encode_rows(table, rows, symbols)
    assert np.array_equal(bits, fast_arith.encode_cdfs(table[rows], symbols))
    assert np.array_equal(fast_arith.decode_rows(bits, table, rows), symbols)


def window_fields(windows):
    return [(w.start, w.length, w.greedy_length, w.delimited, tuple(w.bits)) for w in windows]


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_windows_identical_to_ref(model_name):
    model = MODELS[model_name]
    symbols = UNSEEN[:700] if model_name != "adversarial" else model.sample(120, seed=1)
    for precision in ((12, 14, 16) if model_name != "adversarial" else (14,)):  # adversarial rows are slow
        for window_bits in [precision] + WINDOW_SIZES:
            windows = ref_ei.encode_windows(symbols, model, window_bits, precision)
            assert window_fields(fast_ei.encode_windows(symbols, model, window_bits, precision)) == \
                window_fields(windows)
            bits = fast_ei.compress(symbols, model, window_bits, precision)
            assert np.array_equal(bits, np.concatenate([w.bits for w in windows]))
            assert np.array_equal(fast_ei.decompress(bits, model, window_bits, precision, len(symbols)), symbols)
    # the paper's plain rule too (delimit=False), for the comparison benches
    assert window_fields(fast_ei.encode_windows(symbols, model, 16, delimit=False)) == \
        window_fields(ref_ei.encode_windows(symbols, model, 16, delimit=False))


def test_ac_identical_to_ref_and_round_trips():
    for name, model in MODELS.items():
        symbols = UNSEEN[:1500] if name != "adversarial" else model.sample(200, seed=2)
        for precision in (9, 14, 16):
            bits = ref_ac.compress(symbols, model, precision)
            assert np.array_equal(fast_ac.compress(symbols, model, precision), bits)
            assert np.array_equal(fast_ac.decompress(bits, model, len(symbols), precision), symbols)
    whole = WholePrefixMarkov(MODELS["markov2"])
    bits = ref_ac.compress(UNSEEN[:300], whole)
    assert np.array_equal(fast_ac.compress(UNSEEN[:300], whole), bits)
    assert np.array_equal(fast_ac.decompress(bits, whole, 300), UNSEEN[:300])


def test_running_out_of_bits_is_the_same_error_as_ref():
    """Asked for more symbols than the bits hold, both decoders stop with the same CoderError (naming the same
    symbol) instead of decoding on into symbols nobody coded; asked for exactly the coded count, both decode."""
    whole = WholePrefixMarkov(MODELS["markov2"])
    for model in (MODELS["markov2"], MODELS["unigram"], whole):
        symbols = UNSEEN[:120]
        bits = ref_ac.compress(symbols, model)
        for decoder in (ref_ac, fast_ac):
            assert np.array_equal(decoder.decompress(bits, model, len(symbols)), symbols)
        messages = []
        for decoder in (ref_ac, fast_ac):
            with pytest.raises(CoderError, match="the bits end before symbol") as caught:
                decoder.decompress(bits, model, 100_000)
            messages.append(str(caught.value))
        assert messages[0] == messages[1]


def test_fuzz_against_ref():
    """Random precisions, window sizes, models and texts: fast's bits == ref's, and fast decodes them."""
    rng = np.random.default_rng(11)
    random_markov = MarkovModel.fit(rng.integers(0, 257, 5000), 2)
    for _ in range(40):
        precision = int(rng.integers(9, 17))
        window_bits = max(precision, int(rng.choice([precision, precision + 1, 16, 24, 32, 48, 64, 128])))
        kind = rng.integers(3)
        if kind == 0:
            model, symbols = random_markov, rng.integers(0, 257, int(rng.integers(1, 150)))
        elif kind == 1:
            start = int(rng.integers(0, 55_000))
            model, symbols = MODELS["markov2"], TRAINING[start:start + int(rng.integers(1, 300))]
        else:
            model = AdversarialModel(["skewed", "dyadic", "dirichlet", "mixed"][rng.integers(4)],
                                     context_length=int(rng.integers(1, 3)), seed=int(rng.integers(1 << 30)))
            symbols = model.sample(int(rng.integers(1, 80)), seed=int(rng.integers(1 << 30)))
        bits = ref_ei.compress(symbols, model, window_bits, precision)
        assert np.array_equal(fast_ei.compress(symbols, model, window_bits, precision), bits)
        assert np.array_equal(fast_ei.decompress(bits, model, window_bits, precision, len(symbols)), symbols)


def test_round_trips_on_edge_cases():
    cases = symbol_cases(n_random=100)
    for model in MODELS.values():
        for symbols in cases.values():
            for window_bits in (16, 128):
                bits = fast_ei.compress(symbols, model, window_bits)
                assert np.array_equal(fast_ei.decompress(bits, model, window_bits, n_symbols=len(symbols)), symbols)
            bits = fast_ac.compress(symbols, model)
            assert np.array_equal(fast_ac.decompress(bits, model, len(symbols)), symbols)


def test_long_text_round_trip():
    symbols = bytes_to_symbols(english_text(200_000))
    for window_bits in (16, 128):
        bits = fast_ei.compress(symbols, MODELS["markov2"], window_bits)
        assert np.array_equal(fast_ei.decompress(bits, MODELS["markov2"], window_bits, n_symbols=len(symbols)),
                              symbols)


def test_batched_compression_equals_one_at_a_time():
    texts = [UNSEEN[:400], UNSEEN[400:403], np.zeros(0, dtype=np.int64), UNSEEN[1000:1250], np.array([EOS])]
    for model in (MODELS["markov2"], WholePrefixMarkov(MODELS["markov2"]), MODELS["adversarial"],
                  MODELS["unigram"]):
        for window_bits in (16, 64):
            alone = [ref_ei.compress(t, model, window_bits) for t in texts]
            variants = [fast_ei.compress_batch(texts, model, window_bits)]  # table path where it applies
            for lookahead in (1, 5, None):  # lockstep, one batched model call per step
                variants.append(fast_ei.compress_batch(texts, model, window_bits, use_table=False,
                                                       lookahead=lookahead))
            for batch in variants:
                assert all(np.array_equal(b, a) for b, a in zip(batch, alone))
            back = fast_ei.decompress_batch(variants[1], model, window_bits, n_symbols=[len(t) for t in texts])
            assert all(np.array_equal(b, t) for b, t in zip(back, texts))
            for bits, text in zip(variants[1], texts):  # and ref's decoder reads them
                assert np.array_equal(ref_ei.decompress(bits, model, window_bits, n_symbols=len(text)), text)


def test_decode_window_alone():
    model = MODELS["markov2"]
    windows = ref_ei.encode_windows(UNSEEN[:300], model, 32)
    for w in windows:
        limit = None if w.delimited else w.length
        assert fast_ei.decode_window(w.bits, CdfCursor(model), limit=limit) == list(UNSEEN[w.start:w.start + w.length])


def test_bad_input_raises_like_ref():
    model = MODELS["unigram"]
    for probs in (np.array([0.5, -0.1, 0.6]), np.array([0.5, np.nan, 0.5]), np.zeros(4), np.zeros((2, 0)),
                  np.full(257, 1e305)):
        with pytest.raises(CoderError) as caught:
            ref_arith.quantize(probs)
        with pytest.raises(CoderError, match=re.escape(str(caught.value))):
            fast_arith.quantize(probs)
    with pytest.raises(CoderError):
        fast_arith.quantize(np.ones(257), 8)  # 257 symbols do not fit in 2^8
    with pytest.raises(CoderError):
        fast_arith.Encoder(17)
    encoder = fast_arith.Encoder(4)
    for cdf, message in [([0, 5, 16], None), ([0, 5, 5, 16], "zero-width"), ([0, 9, 5, 16], "non-monotone"),
                         ([1, 5, 16], "0 to 2"), ([0.0, 16.0], "integers")]:
        if message is None:
            with pytest.raises(CoderError, match="out of range"):
                encoder.encode(np.array(cdf), 2)
        else:
            with pytest.raises(CoderError, match=message):
                encoder.encode(np.array(cdf), 0)
    with pytest.raises(CoderError):
        fast_arith.Decoder(np.array([0, 2, 1]))
    assert_equalinfo_input_errors(fast_ei, model)
    with pytest.raises(ValueError, match="outside 0..256"):
        fast_ac.compress(np.array([-1]), model)
    with pytest.raises(CoderError):
        fast_ei.decompress(np.full(16, 2), model, 16)
