"""The analyses (analysis/) and generation (analysis/generate.py) at toy size, against independent computations."""
import functools
import math

import numpy as np
import pytest

from equalinfo.analysis import common, positions, stability, uniformity
from equalinfo.data.shards import ShardWriter
from helpers import english_text
from equalinfo.ref import equalinfo, transformer
from equalinfo.ref.cursor import CdfCursor
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.ref.tokens import bits_to_tokens
from equalinfo.train import backends
from equalinfo.analysis import generate


def brute_levenshtein(a, b):
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


def test_levenshtein_matches_brute_force():
    rng = np.random.default_rng(0)
    sequences = [tuple(rng.integers(0, 3, rng.integers(0, 8)).tolist()) for _ in range(25)]
    got = stability.pairwise_levenshtein([list(s) for s in sequences])
    pairs = [(i, j) for i in range(len(sequences)) for j in range(i + 1, len(sequences))]
    assert got.tolist() == [brute_levenshtein(sequences[i], sequences[j]) for i, j in pairs]


def test_kl_of_secrets_is_near_zero_and_of_a_constant_stream_is_maximal():
    bits = uniformity.secrets_bits(1 << 18)
    for n in (1, 4, 8):
        plug_in, _ = uniformity.kl_to_uniform(uniformity.values(bits, n, False), n)
        count, k = len(bits) // n, 2 ** n - 1  # 2 N ln2 KL is about chi-squared with k degrees of freedom
        assert 0 <= plug_in * 2 * count * math.log(2) < k + 6 * math.sqrt(2 * k)
    zeros = np.zeros(4096, dtype=np.uint8)
    for n in (1, 8, 16):
        for overlapping in (True, False):
            assert uniformity.kl_to_uniform(uniformity.values(zeros, n, overlapping), n) == (n, n)


def test_miller_madow_is_plug_in_minus_its_bias_term():
    observed = np.array([0, 0, 1, 2, 2, 2, 3])
    p = np.bincount(observed) / len(observed)
    plug_in = 2 + float((p * np.log2(p)).sum())
    got_plug_in, got_mm = uniformity.kl_to_uniform(observed, 2)
    assert got_plug_in == pytest.approx(plug_in)
    assert got_mm == pytest.approx(plug_in - 3 / (2 * 7 * math.log(2)))


def test_overlapping_ngrams_are_the_sliding_values():
    bits = np.array([1, 0, 1, 1, 0])
    assert uniformity.values(bits, 3, True).tolist() == [0b101, 0b011, 0b110]
    assert uniformity.values(bits, 2, False).tolist() == [0b10, 0b11]


def test_window_positions_and_per_position_accuracy_on_known_answers():
    assert positions.window_positions(6, 16, 8).tolist() == [1, 2, 1, 2, 1, 2]
    assert positions.window_positions(4, 24, 16).tolist() == [1, 2, 1, 1]
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 4, (3, 6))
    logits = rng.normal(size=(3, 6, 4))
    pos = positions.window_positions(6, 16, 8)
    right_at_1 = np.eye(4)[targets] * 50  # the model is always right at position 1, never at position 2
    wrong_at_2 = np.eye(4)[(targets + 1) % 4] * 50
    logits = np.where((pos == 1)[None, :, None], right_at_1, wrong_at_2) + 0 * logits
    weights = np.ones((3, 6))
    weights[0, 4:] = 0
    out = positions.per_position(logits, targets, weights, pos)
    assert out[1][0] == out[1][2] == 8 and out[2][0] == 0 and out[2][2] == 8
    assert out[1][1] == pytest.approx(8 * math.log(1 + 3 * math.exp(-50)))


def _tiny_dataset(directory, meta, vocab):
    writer = ShardWriter(directory, {"tokens": ("int32", (8,)), "weights": ("float32", (8,))},
                         meta={"vocab_size": vocab, **meta})
    writer.add_batch(tokens=np.arange(16).reshape(2, 8) % vocab, weights=np.ones((2, 8)))
    writer.finish()


def test_positions_refuses_other_methods_and_mismatched_models(tmp_path):
    _tiny_dataset(tmp_path / "d" / "validation", {"method": "gzip", "label": "GZip[v=256]"}, 256)
    dataset = common.open_split(tmp_path / "d")
    with pytest.raises(common.AnalysisError, match="Equal-Info"):
        positions.check_dataset(dataset)
    from equalinfo.train import checkpoint

    cfg = transformer.make_config("micro", vocab_in=258, vocab_out=257)
    checkpoint.save(tmp_path / "m.npz", transformer.init_params(cfg, 0), cfg)
    with pytest.raises(common.AnalysisError, match="wrong model for this dataset"):
        common.load_m2(tmp_path / "m.npz", dataset)


@pytest.fixture(scope="module")
def markov():
    return MarkovModel.fit(bytes_to_symbols(english_text(20_000)), 2)


class Replay:
    """A sampler whose distribution is one-hot on a fixed token sequence."""

    def __init__(self, tokens):
        self.tokens = list(tokens)

    def next(self, history):
        return self.tokens[len(history) - self.start]


@pytest.mark.parametrize("bits_per_token", [8, 16])
def test_generation_decodes_sampled_windows_to_the_text_they_encode(markov, bits_per_token):
    backend = backends.load("ref")
    text = english_text(21_000)[20_000:20_300]
    windows = equalinfo.encode_windows(bytes_to_symbols(text), markov, 16)
    delimited = [w for w in windows if w.delimited]
    tokens = bits_to_tokens(np.concatenate([w.bits for w in delimited]), bits_per_token)
    maker = generate.EqualInfoText(markov, 16, bits_per_token, backend)
    sampler = Replay(tokens)
    sampler.start = 0
    out, stats = generate.generate(sampler, maker, b"", max_bytes=10_000, max_steps=len(tokens))
    assert out == b"".join(text[w.start:w.start + w.length] for w in delimited)
    assert stats.windows == len(delimited) and stats.empty_windows == 0
    assert generate.canonical_windows(maker, stats.window_texts) == (len(delimited) - 1, len(delimited) - 1)


def test_random_windows_decode_alike_in_the_backend_and_ref(markov):
    backend = backends.load(backends.fastest_available())  # fast.cpu's decode_windows when Numba is there
    rng = np.random.default_rng(3)
    maker = generate.EqualInfoText(markov, 16, 16, backend)
    stats = generate.Stats()
    for token in rng.integers(0, 1 << 16, 40):
        maker.push(int(token), stats)
    assert stats.windows == 40
    for bits, symbols in stats.window_texts:  # ref's one-window decoder gives the same text
        assert equalinfo.decode_window(bits, CdfCursor(markov)) == list(symbols)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from equalinfo import cli

    _tiny_dataset(tmp_path / "d" / "validation", {"method": "gzip", "label": "GZip[v=256]"}, 256)
    _tiny_dataset(tmp_path / "d" / "train", {"method": "gzip", "label": "GZip[v=256]"}, 256)
    for argv, message in ((["analyze", "positions", "--data", str(tmp_path / "d"), "--m2", str(tmp_path / "x.npz"),
                            "--out", str(tmp_path)], "Equal-Info"),
                          (["analyze", "uniformity", "--out", str(tmp_path)], "--data")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and err[-1].startswith("equalinfo: error:") and message in err[-1]
