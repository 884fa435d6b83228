"""M1 restarting every L symbols (ref.m1.TransformerModel(restart_every=L)): its rows are those of the model run
afresh on each chunk, every backend and the key/value-cached grower give them bit for bit, and files coded with it
decode only with the same L."""
import numpy as np
import pytest

from equalinfo.fast.cpu import ac as fast_ac
from equalinfo.fast.cpu import equalinfo as fast_ei
from equalinfo.fast.cpu import exact_m1 as fast_exact
from equalinfo.fast.cpu import integer_m1 as fast_integer
from equalinfo.fast.cpu.m1 import prefix_rows
from equalinfo.ref import ac, equalinfo, integer_m1
from equalinfo.ref import transformer as tr
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import ModelError
from equalinfo.ref.symbols import BOS, N_SYMBOLS
from test_m1_model import CFG, make_model, sample_text

EVERY = 5


def restarting(rule, every=EVERY, fast=True):
    """A random M1 under exact rule `rule`, restarting every `every` symbols, rows from fast/cpu or ref."""
    base = make_model(sharpness=3.0)
    params = base.params if rule == 1 else integer_m1.quantize_params(base.params, base.cfg)
    module = {1: fast_exact, 2: fast_integer}[rule]
    if not fast:
        return TransformerModel(params, base.cfg, rule=rule, restart_every=every)
    return TransformerModel(params, base.cfg, rows=module.next_probs, rule=rule, restart_every=every)


@pytest.mark.parametrize("rule", [1, 2])
def test_rows_are_those_of_each_chunk_alone(rule):
    model = restarting(rule, fast=False)
    plain = model.with_restarts(None)
    rng = np.random.default_rng(3)
    inputs = np.concatenate([np.full((2, 1), BOS), rng.integers(0, 257, (2, 13))], axis=1)  # [2, 14]
    rows = model.next_probs(inputs)
    for t in range(inputs.shape[1]):
        start = EVERY * (t // EVERY)
        chunk = np.concatenate([[BOS], inputs[1, start + 1:t + 1]])[None]  # BOS, then the inputs since the restart
        assert np.array_equal(rows[1, t], plain.next_probs(chunk)[0, -1])
    assert np.array_equal(rows[:, :EVERY], plain.next_probs(inputs[:, :EVERY]))  # the first chunk is unchanged
    assert not np.array_equal(rows[:, EVERY:], plain.next_probs(inputs)[:, EVERY:])  # later chunks forget


@pytest.mark.parametrize("rule", [1, 2])
def test_the_grower_restarts_like_next_probs_whatever_the_slots(rule):
    model = restarting(rule)
    rng = np.random.default_rng(4)
    sequences = [np.concatenate([[BOS], rng.integers(0, 257, n - 1)]) for n in (17, 9, 23)]
    grower = prefix_rows(model, len(sequences))
    fed, got = [0, 0, 0], [[], [], []]
    while any(f < len(s) for f, s in zip(fed, sequences)):
        slots = []  # a random interleaving, a slot repeated up to 7 times in one call (an encoder's lookahead)
        for slot in rng.permutation(3):
            slots += [slot] * int(min(rng.integers(0, 8), len(sequences[slot]) - fed[slot] - slots.count(slot)))
        inputs = []
        for position, slot in enumerate(slots):
            inputs.append(sequences[slot][fed[slot] + slots[:position].count(slot)])
        rows = grower.extend(np.array(slots, dtype=np.int64), np.array(inputs, dtype=np.int64))
        for slot, row in zip(slots, rows):
            got[slot].append(row)
        for slot in slots:
            fed[slot] += 1
    for slot, sequence in enumerate(sequences):
        assert np.array_equal(np.array(got[slot]), model.next_probs(sequence[None])[0])
    assert grower.grower.capacity <= 2 * EVERY  # a slot's cache never holds more than one chunk (and its growth)


@pytest.mark.parametrize("rule", [1, 2])
def test_ac_and_equalinfo_files_agree_across_backends_and_round_trip(rule):
    fast_model, ref_model = restarting(rule), restarting(rule, fast=False)
    symbols = sample_text(ref_model.with_restarts(None), 40, seed=rule)
    bits = ac.compress(symbols, ref_model)
    assert np.array_equal(fast_ac.compress(symbols, fast_model), bits)
    assert np.array_equal(fast_ac.decompress(bits, fast_model, len(symbols)), symbols)  # through the grower
    assert np.array_equal(ac.decompress(bits, ref_model, len(symbols)), symbols)
    short = restarting(rule, every=2)  # windows longer than L: restarts inside windows
    window_bits = equalinfo.compress(symbols, restarting(rule, every=2, fast=False), 32)
    assert np.array_equal(fast_ei.compress(symbols, short, 32), window_bits)
    assert np.array_equal(fast_ei.decompress(window_bits, short, 32, n_symbols=len(symbols)), symbols)


def test_ac_pieces_of_a_long_input_are_the_whole_call(monkeypatch):
    model = restarting(2)
    symbols = sample_text(model.with_restarts(None), 60, seed=5)
    whole = fast_ac.compress(symbols, model)
    monkeypatch.setattr(fast_ac, "ROWS_PER_CALL", 2 * EVERY)  # 10-row pieces
    seen = []
    assert np.array_equal(fast_ac.compress(symbols, model, progress=seen.append), whole)
    assert seen[:3] == [10, 20, 30] and seen[-1] == len(symbols)


def test_restarts_are_part_of_the_model_identity():
    model = restarting(1, fast=False)
    arrays = model.arrays()
    assert int(arrays["coding.restart_symbols"]) == EVERY
    assert TransformerModel.from_arrays(arrays).restart_every == EVERY
    assert "coding.restart_symbols" not in model.with_restarts(None).arrays()  # old fingerprints stay valid
    assert len({fingerprint(model.with_restarts(n).arrays()) for n in (None, 4, EVERY)}) == 3
    for bad in (0, -3, 2.5):
        with pytest.raises(ModelError, match="restarts every"):
            model.with_restarts(bad)
    assert model.next_probs(np.array([[BOS]])).shape == (1, 1, N_SYMBOLS)
    assert CFG.vocab_in == 258
