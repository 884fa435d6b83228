"""The paper's Table 9 ablation: the coder resets at every window, M1's context only every k windows (or never).

Checked against an independent computation: each window's cell must lie inside the exact final interval of its
symbols coded with the CDFs of a model that sees the context the ablation promises (the symbols since the last
reset), recomputed here from the model's rows on the whole prefix -- no cursor, no window rule.
"""
import copy

import numpy as np
import pytest

from equalinfo.fast.cpu import equalinfo as fast_equalinfo
from helpers import AdversarialModel, cell_inside, english_text, exact_final_interval
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref.arithmetic import quantize
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import BOS, N_SYMBOLS
from equalinfo.train import m1, repro
from equalinfo.report.paper_numbers import label
from equalinfo.train.preset_schema import PresetError, validate

PRECISION = 14


@pytest.fixture(scope="module")
def markov():
    """An order-2 model fitted on text that includes the coded text, so that context predicts it sharply."""
    training = np.frombuffer(english_text(21_000), np.uint8).astype(np.int64)
    return MarkovModel.fit(training, 2)


@pytest.fixture(scope="module")
def text():
    return np.frombuffer(english_text(21_000)[20_400:], np.uint8).astype(np.int64)


@pytest.fixture(scope="module")
def tiny_m1():
    """A whole-prefix model (M1's kind of rows): a micro Transformer with random weights."""
    from equalinfo.ref import transformer
    cfg = m1.make_config("micro", "float64")
    return TransformerModel(transformer.init_params(cfg, 3), cfg)


def context_starts(windows, every):
    """Per window, the symbol index where the model's context began (the last reset)."""
    starts, begin = [], 0
    for index, window in enumerate(windows):
        if index == 0 or (every is not None and index % every == 0):
            begin = window.start
        starts.append(begin)
    return starts


def check_windows_against_their_contexts(windows, symbols, model, every):
    assert sum(w.length for w in windows) == len(symbols)
    starts = context_starts(windows, every)
    ends = {}  # context start: the end of the last window coded in that context
    for window, begin in zip(windows, starts):
        ends[begin] = window.start + window.length
    rows_after = {begin: quantize(model.next_probs(np.array([[BOS] + list(symbols[begin:end])], np.int64))[0],
                                  PRECISION)  # row j: the CDF after BOS + symbols[begin:begin + j]
                  for begin, end in ends.items()}
    for window, begin in zip(windows, starts):
        offset = window.start - begin
        cdfs = rows_after[begin][offset:offset + window.length]
        low, width, scale = exact_final_interval(cdfs, symbols[window.start:window.start + window.length],
                                                 PRECISION)
        assert cell_inside(window.bits, low, width, scale)


@pytest.mark.parametrize("every", [1, 2, 3, None])
def test_windows_code_their_symbols_in_the_promised_context(markov, text, every):
    windows = ref_equalinfo.encode_windows(text, markov, 16, PRECISION, model_reset_every=every)
    check_windows_against_their_contexts(windows, text, markov, every)
    bits = np.concatenate([w.bits for w in windows])
    decoded = ref_equalinfo.decompress(bits, markov, 16, PRECISION, len(text), model_reset_every=every)
    assert np.array_equal(decoded, text)


class NextByteModel:
    """Predicts byte (previous + 1) mod 256 with probability 0.6; after BOS every byte alike. Context is worth
    8 bits at a window's first symbol, so keeping it must pack more symbols into each window."""
    kind, context_length = "next-byte", 1

    def next_probs(self, inputs):
        inputs = np.asarray(inputs, np.int64)
        out = np.full(inputs.shape + (N_SYMBOLS,), 0.4 / (N_SYMBOLS - 1))
        follows = (inputs + 1) % 256
        batch, time = np.nonzero(inputs != BOS)
        out[batch, time, follows[batch, time]] = 0.6
        out[inputs == BOS] = 1.0 / N_SYMBOLS
        return out


def test_keeping_the_context_changes_the_windows_and_packs_more_symbols():
    model, counting = NextByteModel(), np.arange(600, dtype=np.int64) % 256
    reset = ref_equalinfo.encode_windows(counting, model, 16, PRECISION)
    every_other = ref_equalinfo.encode_windows(counting, model, 16, PRECISION, model_reset_every=2)
    never = ref_equalinfo.encode_windows(counting, model, 16, PRECISION, model_reset_every=None)
    assert len(never) < len(every_other) < len(reset)
    # such windows no longer decode alone: decoding them as reset windows gives other text
    bits = np.concatenate([w.bits for w in never])
    assert not np.array_equal(ref_equalinfo.decompress(bits, model, 16, PRECISION)[:len(counting)], counting)
    assert np.array_equal(ref_equalinfo.decompress(bits, model, 16, PRECISION, model_reset_every=None), counting)


@pytest.mark.parametrize("every", [2, None])
def test_whole_prefix_model_and_fast_backend_agree_with_ref(tiny_m1, text, every):
    symbols = text[:120]
    windows = ref_equalinfo.encode_windows(symbols, tiny_m1, 24, PRECISION, model_reset_every=every)
    check_windows_against_their_contexts(windows, symbols, tiny_m1, every)
    [fast] = fast_equalinfo.encode_windows_batch([symbols], tiny_m1, 24, PRECISION, model_reset_every=every)
    assert [(w.start, w.length, w.bits.tolist()) for w in fast] == [(w.start, w.length, w.bits.tolist())
                                                                     for w in windows]
    bits = np.concatenate([w.bits for w in windows])
    assert np.array_equal(fast_equalinfo.decompress(bits, tiny_m1, 24, PRECISION, len(symbols),
                                                    model_reset_every=every), symbols)


def test_never_reset_calls_of_any_width_give_ref_s_windows(tiny_m1, text, monkeypatch):
    """Never-reset calls evaluate whole sequences, so their width is capped by positions (memory); rows depend on
    their prefix alone, so 1, 2 or all streams per call give ref's windows."""
    from equalinfo.fast.cpu import keeping_context

    streams = [text[i * 40:i * 40 + 40 + 7 * i] for i in range(5)]
    expected = [[(w.start, w.length, w.bits.tolist()) for w in ref_equalinfo.encode_windows(
        s, tiny_m1, 24, PRECISION, model_reset_every=None)] for s in streams]
    longest = max(len(s) for s in streams)
    for budget, width in ((longest, 1), (2 * longest, 2), (10 ** 6, 64)):  # 64: all five in one call
        monkeypatch.setattr(keeping_context, "POSITIONS_PER_CALL", budget)
        assert keeping_context.calls_width(longest, 64) == width
        got = keeping_context.encode_keeping_context(streams, tiny_m1, 24, PRECISION, True, None)
        assert [[(w.start, w.length, w.bits.tolist()) for w in ws] for ws in got] == expected


def test_without_resets_the_prefix_rows_are_evaluated_about_once(tiny_m1, text):
    """The cursor keeps rows across windows: rows evaluated grow like the text, not like windows x text."""
    evaluated = []

    class Counting:
        kind, context_length = "counting", None

        def next_probs(self, inputs):
            evaluated.append(inputs.shape[1])
            return tiny_m1.next_probs(inputs)

    symbols = text[:200]
    windows = ref_equalinfo.encode_windows(symbols, Counting(), 16, PRECISION, model_reset_every=None)
    assert len(windows) > 20
    assert sum(evaluated) <= 4 * len(symbols)  # doubling prefixes: < 2n + the first chunk


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_reset_interval_is_refused(markov, text, bad):
    with pytest.raises(ref_equalinfo.WindowError, match="model_reset_every"):
        ref_equalinfo.encode_windows(text[:20], markov, 16, PRECISION, model_reset_every=bad)


def test_preset_entries_and_labels():
    preset = copy.deepcopy(repro.load_preset("demo"))
    preset["datasets"]["methods"] = [
        {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8]},
        {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8], "m1_reset_every": 2},
        {"method": "equalinfo", "window_bits": [16], "bits_per_token": [8], "m1_reset_every": "never"}]
    validate(preset)
    names = [spec[0] for spec in repro.dataset_specs(preset)]
    assert names == ["EqualInfoAC[b=16,v=256]", "EqualInfoAC[b=16,v=256,M1 reset every 2]",
                     "EqualInfoAC[b=16,v=256,M1 never reset]"]
    assert label("equalinfo", 16, 16, True, None) == "EqualInfoAC[b=16,v=65k,M1 never reset]"
    for bad in (0, "sometimes"):
        preset["datasets"]["methods"][1]["m1_reset_every"] = bad
        with pytest.raises(PresetError, match="m1_reset_every"):
            validate(preset)


def test_a_window_that_gives_back_symbols_leaves_them_out_of_the_next_ones_context():
    """A window whose greedy end admits no delimiting cell ends earlier; without a reset, the symbols it tried
    past its end must not stay in the model's context (the decoder never sees them there)."""
    model = AdversarialModel("mixed", context_length=2, seed=5)
    symbols = model.sample(1500, seed=1)
    windows = ref_equalinfo.encode_windows(symbols, model, 16, PRECISION, model_reset_every=None)
    assert any(w.greedy_length > w.length for w in windows[:-1])
    check_windows_against_their_contexts(windows, symbols, model, None)
    bits = np.concatenate([w.bits for w in windows])
    assert np.array_equal(ref_equalinfo.decompress(bits, model, 16, PRECISION, len(symbols),
                                                   model_reset_every=None), symbols)
