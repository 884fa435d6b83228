"""Plain AC over many segments as one batch (ac.compress_batch/decompress_batch): the bits and symbols of coding
each segment alone, on ref (a loop) and on fast.cpu (an M1's segments in lockstep, fast/cpu/ac_lockstep.py), for
M1 under rules 1, 2 and 3, with and without restarts, for table models, and the single decoder's CoderErrors."""
import numba
import numpy as np
import pytest
from test_integer_m1 import small

from equalinfo.fast.cpu import ac as fast_ac
from equalinfo.fast.cpu import ac_lockstep
from equalinfo.filetool import codec, fileformat
from equalinfo.ref import ac
from equalinfo.ref.arithmetic import CoderError
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.train import backends
from equalinfo.train.m1 import coding_model

LENGTHS = [37, 0, 1, 37, 12, 2]  # unequal, with an empty segment and a one-symbol one


def m1(rule, backend="cpu", restart_every=None):
    """A small trained-like M1 under exact rule `rule`, rows from the backend's twin of the rule."""
    params, cfg = small(trained_like=True)
    return coding_model(params, cfg, backend, rule=rule, restart_every=restart_every)


def text_pieces(lengths, seed=0):
    """Segments of English-like bytes (so a trained-like M1's rows are not all flat) of the given lengths."""
    text = np.frombuffer(b"the quick brown fox jumps over the lazy dog; " * 40, dtype=np.uint8).astype(np.int64)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(text) - max(lengths) - 1, len(lengths))
    return [text[start:start + n] for start, n in zip(starts, lengths)]


def one_by_one(pieces, model, precision=14):
    return [ac.compress(piece, model, precision) for piece in pieces]


@pytest.mark.parametrize("restart_every", [None, 5], ids=["whole", "restart5"])
@pytest.mark.parametrize("rule", [1, 2, 3])
def test_m1_batches_equal_each_segment_alone_and_ref(rule, restart_every):
    pieces = text_pieces(LENGTHS, seed=rule)
    fast_model, ref_model = m1(rule, "cpu", restart_every), m1(rule, "ref", restart_every)
    want = one_by_one(pieces, ref_model)  # ref, one segment at a time
    for got in (fast_ac.compress_batch(pieces, fast_model), ac.compress_batch(pieces, ref_model),
                [fast_ac.compress(piece, fast_model) for piece in pieces]):
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    decoded = fast_ac.decompress_batch(want, fast_model, LENGTHS)  # lockstep, through the grower
    assert all(np.array_equal(d, piece) for d, piece in zip(decoded, pieces))
    assert all(np.array_equal(d, piece) for d, piece in zip(ac.decompress_batch(want, ref_model, LENGTHS), pieces))


@pytest.mark.parametrize("restart_every", [None, 4])
def test_lockstep_without_a_grower_asks_next_probs_the_same_rows(restart_every):
    """Rows from ref's rule (no key/value-cached grower): the batch asks next_probs for [A, t+1] prefixes (from the
    last restart on)."""
    model = m1(2, "ref", restart_every=restart_every)
    pieces = text_pieces([9, 0, 14, 3], seed=5)
    bits = one_by_one(pieces, model)
    decoded = ac_lockstep.decode_segments(bits, model, [9, 0, 14, 3], 14)
    assert all(np.array_equal(d, piece) for d, piece in zip(decoded, pieces))


def test_small_segments_share_encoder_calls(monkeypatch):
    """Many short pieces of one width go into one [B, width] call; the bits are still each segment's own."""
    model = m1(1, "cpu", restart_every=8)
    pieces = text_pieces([20, 20, 20, 7, 20], seed=2)
    calls = []
    rows = model.rows
    model.rows = lambda params, cfg, inputs: calls.append(inputs.shape) or rows(params, cfg, inputs)
    got = fast_ac.compress_batch(pieces, model)
    assert all(np.array_equal(g, w) for g, w in zip(got, one_by_one(pieces, m1(1, "ref", restart_every=8))))
    assert len(calls) == 2  # the four 20-symbol pieces together, the 7-symbol one alone


@pytest.mark.parametrize("model", [MarkovModel.fit(text_pieces([300])[0], order=2),
                                   UnigramModel.fit(text_pieces([300])[0])], ids=["markov2", "unigram"])
def test_table_models_batch_as_a_loop(model):
    pieces = text_pieces(LENGTHS, seed=7)
    want = one_by_one(pieces, model)
    for coder in (fast_ac, ac):
        got = coder.compress_batch(pieces, model)
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
        assert all(np.array_equal(d, p) for d, p in zip(coder.decompress_batch(want, model, LENGTHS), pieces))


def single_error(bits, model, n):
    with pytest.raises(CoderError) as error:
        fast_ac.decompress(bits, model, n)
    return str(error.value)


def outcome(decode, bits, model, n):
    """The decoded symbols as a tuple, or the CoderError's message."""
    try:
        return tuple(decode(bits, model, n))
    except CoderError as error:
        return str(error)


@pytest.mark.parametrize("rule", [1, 3])
def test_truncated_segments_raise_the_single_decoders_error(rule):
    model = m1(rule, "cpu", restart_every=6)
    threads = numba.get_num_threads()
    pieces = text_pieces([40, 40, 40], seed=3)
    bits = one_by_one(pieces, model)
    short = [bits[0], bits[1][:len(bits[1]) // 3], bits[2][:4]]  # segments 1 and 2 end early
    said = single_error(short[1], model, 40)
    assert said == single_error(short[1], m1(rule, "ref", restart_every=6), 40)  # ref's message too
    for coder, each in ((fast_ac, model), (ac, m1(rule, "ref", restart_every=6))):
        with pytest.raises(CoderError) as error:
            coder.decompress_batch(short, each, [40, 40, 40])
        assert str(error.value) == said  # the first failing segment's, as a loop raises
    for cut in range(0, len(bits[1]) + 1, 3):  # every outcome of the single decoder, the last check's included
        for n in (40, 44):
            alone, batch = outcome(fast_ac.decompress, bits[1][:cut], model, n), outcome(
                lambda b, m, k: fast_ac.decompress_batch([bits[0], b], m, [40, k])[1], bits[1][:cut], model, n)
            assert alone == batch, (cut, n)
    assert numba.get_num_threads() == threads  # the decoder's one-thread calls restore the count, errors too
    with pytest.raises(CoderError, match="0/1 values"):
        fast_ac.decompress_batch([bits[0], np.array([2, 0])], model, [40, 1])


def test_progress_counts_every_symbol_once():
    model = m1(2, "cpu", restart_every=5)
    lengths = [1500, 300, 1100]
    pieces = [np.resize(piece, n) for piece, n in zip(text_pieces([60] * 3), lengths)]
    bits = fast_ac.compress_batch(pieces, model)
    seen = []
    fast_ac.decompress_batch(bits, model, lengths, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == sum(lengths) and len(seen) >= 2  # step 1024 and the end
    seen.clear()
    fast_ac.compress_batch(pieces, model, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == sum(lengths)


def test_files_written_segment_by_segment_still_decode():
    """A format 3 AC file made with the per-segment coder (the writer before the batch) decodes through the
    batch, and the batch writes the very same file."""
    model = m1(3, "ref", restart_every=16)
    data = bytes(np.resize(np.frombuffer(b"To be, or not to be, that is the question. ", np.uint8), 300))
    cpu = backends.load("cpu")
    header, coder_model = codec.coded_header(data, "ac", model, 0, 14, cpu)
    symbols = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    pieces = [symbols[i:i + 128] for i in range(0, len(symbols), 128)]
    old_bits = [fast_ac.compress(piece, coder_model, 14) for piece in pieces]  # the old writer's loop
    old_file = fileformat.pack(header, old_bits, model.arrays(), 128)
    new_file, _ = codec.compress_bytes(data, "ac", model, backend=cpu, segment_bytes=128)
    assert new_file == old_file
    for backend in (cpu, backends.load("ref")):
        assert codec.decompress_bytes(old_file, backend=backend)[0] == data
