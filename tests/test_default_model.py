"""What compress does without --model / with model=None (codec.default_model, default_method, default_window_bits):
the shipped M1 with plain AC for UTF-8 text, the fitted Markov/unigram model with Equal-Info b=16 for other bytes,
`--model fitted` / model="fitted" for the fast coder, and one clear line when the shipped M1 is missing.

The shipped M1 codes at KB/s and decodes slower (no key/value cache in AC decoding yet), so the one true round trip
through the default codes 253 bytes; every other test of the file tool passes an explicit fitted model.
"""
import re
import io

import pytest

import equalinfo
from helpers import fails_cli, run_cli
from equalinfo.filetool import codec, fileformat, shipped_model
from equalinfo.ref.models import MarkovModel

SPEED = re.compile(r" [0-9.,]+ (B|KB|MB)/s on ")  # the summary line's speed, whatever its unit

TEXT = ("Romeo, Romeo, wherefore art thou Romeo? \u2014 A socket is an endpoint of a two-way connection between "
        "two programs running on the network. Deny thy father and refuse thy name; or if thou wilt not, be but "
        "sworn my love.\n").encode()
NON_UTF8 = b"\xff\xfe\x00\x80 latin-1 caf\xe9 \xc3\x28 \xed\xa0\x80 " * 40


def test_the_default_is_the_shipped_m1_with_ac_and_the_api_and_the_cli_write_the_same_file(capsys, tmp_path):
    assert 200 <= len(TEXT) <= 300
    (tmp_path / "t.txt").write_bytes(TEXT)
    status, _, said = run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi")
    assert status == 0, said
    made = (tmp_path / "t.eqi").read_bytes()
    header = fileformat.unpack(made).header
    assert (header.method, header.model_kind, header.fingerprint, header.model_length) == (
        "ac", "transformer", shipped_model.FINGERPRINT, 0)
    assert len(made) < len(TEXT)  # not stored: M1 shrinks even 253 bytes, header included
    assert "bits/byte" in said and SPEED.search(said) and "(the shipped M1)" in said  # ratio and speed
    assert equalinfo.compress(TEXT) == made
    status, _, said = run_cli(capsys, "decompress", tmp_path / "t.eqi", tmp_path / "t.out")
    assert status == 0 and (tmp_path / "t.out").read_bytes() == TEXT
    assert SPEED.search(said) and "from the shipped M1" in said
    assert equalinfo.decompress(made) == TEXT


def test_the_stream_coder_follows_the_default():
    """compress_stream with model=None resolves the same model and method as compress (bytes compared only: the
    round trip above decodes)."""
    out = io.BytesIO()
    header = equalinfo.compress_stream(io.BytesIO(TEXT), out)
    assert header.fingerprint == shipped_model.FINGERPRINT and header.method == "ac"
    assert out.getvalue() == equalinfo.compress(TEXT, store=False)


def test_bytes_that_are_not_utf8_get_the_fitted_model(capsys, tmp_path):
    (tmp_path / "n.bin").write_bytes(NON_UTF8)
    for name, options in (("default", []), ("fitted", ["--model", "fitted"])):
        assert run_cli(capsys, "compress", tmp_path / "n.bin", tmp_path / f"{name}.eqi", *options)[0] == 0
    made = (tmp_path / "default.eqi").read_bytes()
    header = fileformat.unpack(made).header
    assert (header.method, header.window_bits) == ("equalinfo", 16) and header.model_length > 0
    assert made == (tmp_path / "fitted.eqi").read_bytes() == equalinfo.compress(NON_UTF8)
    assert equalinfo.decompress(made) == NON_UTF8


def test_model_fitted_is_the_cheapest_embedded_model_on_text_too(capsys, tmp_path):
    text = TEXT * 8
    (tmp_path / "t.txt").write_bytes(text)
    assert run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "fitted")[0] == 0
    made = (tmp_path / "t.eqi").read_bytes()
    assert made == equalinfo.compress(text, "fitted") == codec.compress_or_store(text, "equalinfo",
                                                                                 *codec.fitted_model(text))[0]
    header = fileformat.unpack(made).header
    assert header.model_kind in ("markov", "unigram") and header.model_length > 0
    assert (header.method, header.window_bits) == ("equalinfo", 16)
    assert equalinfo.decompress(made) == text


def test_default_method_and_window_by_model():
    m1 = shipped_model.load()
    markov = MarkovModel.fit(list(TEXT), 2)
    assert (codec.default_method(m1), codec.default_window_bits(m1)) == ("ac", shipped_model.WINDOW_BITS)
    assert (codec.default_method(markov), codec.default_window_bits(markov)) == ("equalinfo", 16)


def test_window_bits_alone_means_equalinfo_with_any_model(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    assert run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "markov1",
                   "--window-bits", "32", "--no-store")[0] == 0
    header = fileformat.unpack((tmp_path / "t.eqi").read_bytes()).header
    assert (header.method, header.window_bits) == ("equalinfo", 32)
    fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "u.eqi", "--method", "ac", "--window-bits", "32",
              says="--window-bits applies to --method equalinfo only")


@pytest.mark.parametrize("sample, text", [
    (b"", True), (TEXT, True), (TEXT + "\u2014".encode()[:2], True),  # a character cut by the sample's end
    (NON_UTF8, False), (b"\xe2\x80", True), (b"\xe2\x80 abc", False), (b"abc\xff", False),
])
def test_is_text(sample, text):
    assert codec.is_text(sample) is text


def test_a_missing_shipped_model_is_one_line_naming_the_fitted_flag(capsys, tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_bytes(TEXT)
    monkeypatch.setattr(shipped_model, "PATH", tmp_path / "missing.npz")
    shipped_model.cache_clear()
    try:
        err = fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi",
                        says="the shipped M1 is missing from this install")
        assert "--model fitted" in err and err.count("\n") == 1
        with pytest.raises(equalinfo.FormatError, match='model="fitted"') as caught:
            equalinfo.compress(TEXT)
        assert caught.value.cause == "missing-model"
        assert run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "fitted")[0] == 0
        assert equalinfo.decompress(equalinfo.compress(TEXT, "fitted")) == TEXT
    finally:
        shipped_model.cache_clear()


def test_unknown_model_names_are_refused():
    with pytest.raises(ValueError, match="unknown model name 'markov9'"):
        equalinfo.compress(TEXT, "markov9")
