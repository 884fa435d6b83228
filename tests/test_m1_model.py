"""M1 as a coding model: bit-identical rows whatever the call's shape, and Equal-Info round trips through a small
randomly initialised Transformer (ref.m1.TransformerModel)."""
import numpy as np
import pytest

from equalinfo.fast.cpu import ac as fast_ac
from equalinfo.fast.cpu import equalinfo as fast_ei
from equalinfo.fast.cpu import exact_m1 as fast_exact
from equalinfo.ref import ac, equalinfo, exact_m1, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import ModelError
from equalinfo.ref.symbols import BOS, EOS, N_SYMBOLS, documents_to_symbols
from equalinfo.filetool import codec
from equalinfo.filetool.fileformat import FormatError
from equalinfo.train import checkpoint

CFG = tr.Config(vocab_in=258, vocab_out=257, d_model=32, n_heads=4, n_layers=2, d_ff=48)  # float32, like M1


def make_model(sharpness=1.0, dtype="float32", seed=0):
    """A random M1; sharpness scales the output matrix so that some rows are peaked (long windows)."""
    cfg = tr.Config(**{**CFG.to_dict(), "dtype": dtype})
    params = tr.init_params(cfg, seed)
    params["unembed"] = (params["unembed"] * sharpness).astype(cfg.dtype)
    return TransformerModel(params, cfg)


def sample_text(model, n, seed):
    """Symbols drawn from the model itself, window-sized context at a time, so they are likely under it."""
    rng = np.random.default_rng(seed)
    symbols = []
    while len(symbols) < n:
        width = 16  # restart the context every `width` symbols, as windows do
        context = [BOS] + symbols[len(symbols) - len(symbols) % width:]
        probs = model.next_probs(np.array([context]))[0, -1]
        symbols.append(int(rng.choice(N_SYMBOLS, p=probs)))
    return np.array(symbols, dtype=np.int64)


def test_rows_are_the_exact_rule_and_independent_of_the_call():
    model = make_model()
    rng = np.random.default_rng(1)
    inputs = np.concatenate([np.full((3, 1), BOS), rng.integers(0, 257, (3, 30))], axis=1)
    full = model.next_probs(inputs)
    assert full.dtype == np.float64 and full.shape == (3, 31, N_SYMBOLS)
    assert np.array_equal(full, exact_m1.next_probs(model.params, model.cfg, inputs))
    for length in (1, 2, 7, 30):
        assert np.array_equal(model.next_probs(inputs[1:2, :length])[0], full[1, :length])
    fast = TransformerModel(model.params, model.cfg, rows=fast_exact.next_probs)
    assert np.array_equal(fast.next_probs(inputs), full)
    assert fingerprint(fast.arrays()) == fingerprint(model.arrays())  # same rule, same model


def test_bad_models_and_inputs_raise():
    cfg = tr.Config(vocab_in=10, vocab_out=9, d_model=8, n_heads=2, n_layers=1, d_ff=8)
    with pytest.raises(ModelError, match="258"):
        TransformerModel(tr.init_params(cfg, 0), cfg)
    with pytest.raises(ModelError):
        make_model().next_probs(np.array([[BOS, 300]]))


def test_arrays_of_another_rule_are_refused():
    arrays = make_model().arrays()
    TransformerModel.from_arrays(arrays)  # its own arrays load
    older = {name: value for name, value in arrays.items() if name != "coding.exact_m1_version"}
    with pytest.raises(ModelError, match="older equalinfo"):
        TransformerModel.from_arrays(older)
    newer = {**arrays, "coding.exact_m1_version": np.array(max(RULE_MODULES) + 1)}
    with pytest.raises(ModelError, match=f"version {max(RULE_MODULES) + 1} of the exact arithmetic"):
        TransformerModel.from_arrays(newer)
    capped = {**arrays, "coding.max_window_symbols": np.array(24)}  # windows ended by a symbol count
    with pytest.raises(ModelError, match="caps Equal-Info windows at 24"):
        TransformerModel.from_arrays(capped)
    other = {**arrays, "coding.exact_m1_version": np.array(2)}  # float parameters claiming rule 2
    with pytest.raises(ModelError, match="rule-2 parameters"):
        TransformerModel.from_arrays(other)


def test_fast_and_ref_coders_read_each_other():
    """The Numba rows and lockstep batches make the same bits as ref one window at a time, and decode ref's bits."""
    model = make_model(sharpness=3.0, seed=5)
    fast = TransformerModel(model.params, model.cfg, rows=fast_exact.next_probs)
    texts = [documents_to_symbols(["Equal-Info windows decode alone."]), sample_text(make_model(3.0, seed=5), 90, 6),
             documents_to_symbols(["x"])]
    without_cache = TransformerModel(model.params, model.cfg, rows=lambda *args: fast_exact.next_probs(*args))
    batched = fast_ei.compress_batch(texts, fast, window_bits=16)
    for symbols, bits in zip(texts, batched):
        assert np.array_equal(bits, equalinfo.compress(symbols, model, window_bits=16))
        assert np.array_equal(equalinfo.decompress(bits, model, 16, n_symbols=len(symbols)), symbols)
        assert np.array_equal(fast_ei.decompress(bits, fast, 16, n_symbols=len(symbols)), symbols)  # KV-cached
        assert np.array_equal(fast_ei.decompress(bits, without_cache, 16, n_symbols=len(symbols)), symbols)
    ref_windows = equalinfo.encode_windows_batch(texts, model, 32)
    for ours, theirs in zip(fast_ei.encode_windows_batch(texts, fast, 32), ref_windows):
        assert [(w.start, w.length, w.greedy_length, w.delimited) for w in ours] == \
            [(w.start, w.length, w.greedy_length, w.delimited) for w in theirs]
        assert all(np.array_equal(a.bits, b.bits) for a, b in zip(ours, theirs))
    ac_bits = fast_ac.compress(texts[1], fast)
    assert np.array_equal(ac_bits, ac.compress(texts[1], model))
    assert np.array_equal(ac.decompress(ac_bits, model, len(texts[1])), texts[1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_equal_info_round_trip_on_text(dtype):
    model = make_model(dtype=dtype)
    symbols = documents_to_symbols(["Equal-Info windows: \u00e9t\u00e9!", "the cat sat on the mat " * 3])
    bits = equalinfo.compress(symbols, model, window_bits=16)
    assert len(bits) % 16 == 0
    decoded = equalinfo.decompress(bits, model, window_bits=16, n_symbols=len(symbols))
    assert np.array_equal(decoded, symbols)


def test_equal_info_round_trip_with_long_windows():
    """Text sampled from a peaked model fits many symbols per window."""
    model = make_model(sharpness=6.0, seed=3)
    symbols = sample_text(model, 120, seed=4)
    windows = equalinfo.encode_windows(symbols, model, window_bits=16)
    lengths = [w.length for w in windows]
    assert max(lengths) >= 8 and any(1 < n < max(lengths) for n in lengths), lengths
    bits = equalinfo.compress(symbols, model, window_bits=16)
    assert np.array_equal(equalinfo.decompress(bits, model, window_bits=16, n_symbols=len(symbols)), symbols)
    # windows decode alone: the second half of the windows gives the second half of the text
    half = len(windows) // 2
    start = windows[half].start
    tail = equalinfo.decompress(bits[half * 16:], model, window_bits=16, n_symbols=len(symbols) - start)
    assert np.array_equal(tail, symbols[start:])


def test_from_checkpoint_and_fingerprint(tmp_path):
    model = make_model()
    checkpoint.save(tmp_path / "m1.npz", model.params, model.cfg)
    params, cfg, _, _ = checkpoint.load(tmp_path / "m1.npz")
    loaded = TransformerModel(params, cfg)
    assert fingerprint(loaded.arrays()) == fingerprint(model.arrays())
    inputs = np.array([[BOS, 72, 105, EOS, 10]])
    assert np.array_equal(loaded.next_probs(inputs), model.next_probs(inputs))
    rebuilt = TransformerModel.from_arrays(model.arrays())
    assert rebuilt.cfg == model.cfg and fingerprint(rebuilt.arrays()) == fingerprint(model.arrays())
    # the retired window cap is not stored any more; an M1 stored with it (equalinfo 0.1.0) keeps its fingerprint
    assert "coding.max_window_symbols" not in model.arrays()
    old_arrays = {**model.arrays(), "coding.max_window_symbols": np.array(-1, dtype=np.int64)}
    old = TransformerModel.from_arrays(old_arrays)
    assert fingerprint(old.arrays()) == fingerprint(old_arrays) != fingerprint(model.arrays())
    assert fingerprint(model.with_window_cap_entry().arrays()) == fingerprint(old_arrays)


def test_files_coded_with_an_m1_of_equalinfo_0_1_0_still_decode():
    """Files name their M1 by fingerprint; those made when M1s stored the retired window cap decode with the same
    M1 built today (given by the user, as from a checkpoint) or embedded in them."""
    base = make_model(sharpness=3.0)
    model = TransformerModel(integer_m1.quantize_params(base.params, base.cfg), base.cfg, rule=2)
    old = model.with_window_cap_entry()  # the M1 as equalinfo 0.1.0 fingerprinted it
    data = b"Equal-Info windows decode alone."
    for method in ("equalinfo", "ac"):
        blob, header = codec.compress_bytes(data, method, old, embed=False)
        assert header.fingerprint == fingerprint(old.arrays()) != fingerprint(model.arrays())
        assert codec.decompress_bytes(blob, model)[0] == data
        blob, _ = codec.compress_bytes(data, method, old, embed=True)
        assert codec.decompress_bytes(blob)[0] == data
    other = make_model(sharpness=3.0, seed=9)  # a different M1 is still refused
    with pytest.raises(FormatError, match="wrong model"):
        codec.decompress_bytes(codec.compress_bytes(data, "ac", old, embed=False)[0], other)
