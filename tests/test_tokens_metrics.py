"""Bit tokens, the paper's metrics, the GZip/bytes baselines and the symbol helpers."""
import math
import zlib

import numpy as np
import pytest

from equalinfo.ref import baselines, metrics
from equalinfo.ref.symbols import EOS, documents_to_symbols, symbols_to_bytes, symbols_to_documents, text_to_bytes
from equalinfo.ref.tokens import bits_to_tokens, tokens_to_bits


@pytest.mark.parametrize("bits_per_token", range(1, 17))
def test_token_round_trip_any_length(bits_per_token):
    rng = np.random.default_rng(bits_per_token)
    for n_bits in (0, 1, bits_per_token, 3 * bits_per_token - 1, 257):
        bits = rng.integers(0, 2, n_bits).astype(np.uint8)
        tokens = bits_to_tokens(bits, bits_per_token)
        assert len(tokens) == -(-n_bits // bits_per_token)
        assert tokens.max(initial=0) < 1 << bits_per_token
        assert np.array_equal(tokens_to_bits(tokens, bits_per_token, n_bits), bits)


def test_tokens_are_big_endian_groups():
    data = bytes(range(0, 256, 7)) + b"\x01"
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    assert np.array_equal(bits_to_tokens(bits, 8), np.frombuffer(data, np.uint8))
    assert np.array_equal(bits_to_tokens(bits, 16), np.frombuffer(data, ">u2"))
    assert np.array_equal(bits_to_tokens(bits, 1), bits)


def test_token_errors():
    with pytest.raises(ValueError, match="from 1 to 16"):
        bits_to_tokens(np.zeros(8, np.uint8), 17)
    with pytest.raises(ValueError, match="0..255"):
        tokens_to_bits(np.array([256]), 8)
    with pytest.raises(ValueError, match="padding bits"):
        tokens_to_bits(np.array([1]), 8, n_bits=4)
    with pytest.raises(ValueError, match="0/1"):
        bits_to_tokens(np.array([0, 2]), 8)


def test_bits_per_byte_and_ratios():
    # a uniform model over 256 byte tokens costs ln 256 nats per token = 8 bits per byte
    assert metrics.bits_per_byte(math.log(256), 1.0) == pytest.approx(8.0)
    # the paper's M1: AC at CR 5.49 on v=256 tokens that look uniform gives 8 / 5.49 = 1.457 bits/byte
    assert metrics.bits_per_byte(math.log(256), 5.49) == pytest.approx(1.457, abs=1e-3)
    assert metrics.token_compression_ratio(10_240, 1_000) == pytest.approx(10.24)
    assert metrics.bit_compression_ratio(100, 200) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        metrics.bits_per_byte(1.0, 0.0)


def test_flops_per_byte_matches_the_paper():
    # docs/paper.md Table 17: EqualInfoAC[16,256] Delay at 25m (CR 2.20) costs 28.73M FLOPs/byte, with the paper's
    # nominal 25M parameters for M2 and 6M FLOPs/byte (2 x 3M) for M1
    assert metrics.flops_per_byte(25e6, 2.20, m1_params=3e6) / 1e6 == pytest.approx(28.73, abs=0.01)
    assert metrics.flops_per_byte(25e6, 1.0) == pytest.approx(50e6)


def test_gzip_baseline_is_zlib_with_header_and_footer():
    data = ("to be or not to be " * 50).encode()
    bits = baselines.gzip_compress(data)
    raw = baselines.bits_to_bytes(bits)
    assert raw[:2] == b"\x78\x9c"  # zlib header, default level
    assert int.from_bytes(raw[-4:], "big") == zlib.adler32(data)  # Adler-32 footer
    assert baselines.gzip_decompress(bits) == data
    corrupt = bits.copy()
    corrupt[40:48] ^= 1
    with pytest.raises(ValueError, match="corrupt GZip"):
        baselines.gzip_decompress(corrupt)


def test_documents_and_symbols():
    docs = ["héllo", "", "wörld\n"]
    symbols = documents_to_symbols(docs)
    assert list(symbols).count(EOS) == 3
    assert symbols_to_documents(symbols) == [d.encode("utf-8") for d in docs]
    assert symbols_to_documents(symbols[:-1])[-1] == "wörld\n".encode("utf-8")
    assert documents_to_symbols([b"\xff\xfe raw"])[0] == 0xFF  # non-UTF-8 bytes stay bytes
    with pytest.raises(ValueError, match="UTF-8"):
        text_to_bytes("bad \udcff surrogate")
    with pytest.raises(ValueError, match="not a byte"):
        symbols_to_bytes(np.array([65, EOS]))
