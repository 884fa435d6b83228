"""Memory said before work (limits.py): compress and decompress refuse an input whose coding would not fit, a
Markov order whose table would be too large is refused without sorting the whole input's contexts, and the
context bound agrees with a count done another way."""
import numpy as np
import pytest

from equalinfo import limits
from equalinfo.filetool import codec
from equalinfo.filetool import commands as file_commands

from helpers import fails_cli, run_cli

TEXT = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 200


def test_coding_that_would_not_fit_is_refused_before_reading(capsys, tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_bytes(TEXT)
    assert run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "fitted")[0] == 0
    need = limits.CODING_BASE_BYTES + limits.CODING_BYTES_PER_BYTE * len(TEXT)
    monkeypatch.setattr(limits, "available_memory", lambda: need - 1)
    monkeypatch.setattr(file_commands, "read_input", lambda *a, **k: pytest.fail("read before the check"))
    fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "u.eqi", says=f"t.txt: coding {len(TEXT):,} bytes")
    monkeypatch.undo()
    monkeypatch.setattr(limits, "available_memory", lambda: need - 1)
    monkeypatch.setattr(codec, "decompress_bytes", lambda *a, **k: pytest.fail("decoded before the check"))
    fails_cli(capsys, "decompress", tmp_path / "t.eqi", tmp_path / "back", says="GiB")
    assert not (tmp_path / "u.eqi").exists() and not (tmp_path / "back").exists()
    monkeypatch.setattr(limits, "available_memory", lambda: need)
    assert limits.coding_memory_problem(len(TEXT)) is None


def test_a_markov_order_too_large_for_the_input_is_refused_without_the_full_estimate(capsys, tmp_path, monkeypatch):
    (tmp_path / "r.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 1 << 20, np.uint8).tobytes())
    monkeypatch.setattr(codec, "markov_estimate", lambda *a: pytest.fail("the whole input's contexts were sorted"))
    fails_cli(capsys, "compress", tmp_path / "r.bin", tmp_path / "r.eqi", "--model", "markov7",
              says="order-7 contexts")


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_context_bound_matches_a_count_of_k_grams(order):
    symbols = np.frombuffer(TEXT[:3000] + bytes(range(256)), np.uint8).astype(np.int64)
    grams = {tuple(symbols[i - order:i]) for i in range(order, len(symbols))}
    for most in (len(grams) - 1, len(grams)):
        assert codec.more_contexts_than(symbols, order, most) == (len(grams) > most)
