"""The .eqi container (filetool/fileformat.py) and the byte-level codec behind the CLI (filetool/codec.py).

Inputs stay small (the reference coder runs at ~20-50 us per symbol); the damage tests are exhaustive over every
byte of a small file because they never reach the decoder: every problem must be caught by the container checks.
"""
import io
import zipfile
import zlib

import numpy as np
import pytest

from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train import backends
from equalinfo.filetool import codec, fileformat, segments
from equalinfo.filetool.fileformat import FormatError, Header

TEXT = (b"Equal-Info windows reset the coder every b bits, so each window decodes on its own. "
        b"\xc3\xa9t\xc3\xa9 \xe2\x82\xac 100\n") * 6
RNG = np.random.default_rng(2024)
INPUTS = {
    "empty": b"",
    "one byte": b"A",
    "every byte value": bytes(range(256)),
    "non-utf8": b"\xff\xfe\x80\x81caf\xe9 \xc3\x28 \xa0\xa1" * 8,
    "random binary": RNG.integers(0, 256, 300, dtype=np.uint8).tobytes(),
    "text": TEXT,
}


def markov(data, order=2):
    return MarkovModel.fit(bytes_to_symbols(data), order)


def expect(cause, function, *args, **kwargs):
    """Run function, require a FormatError with this cause, return its message."""
    with pytest.raises(FormatError) as caught:
        function(*args, **kwargs)
    assert caught.value.cause == cause, str(caught.value)
    return str(caught.value)


def compressed(data=TEXT, method="equalinfo", **kwargs):
    if method in ("ac", "equalinfo") and "model" not in kwargs:
        kwargs["model"] = markov(data)
    return codec.compress_bytes(data, method, **kwargs)[0]


def with_header(blob, **changes):
    """The same file with header fields changed and both CRCs recomputed (a well-formed but lying file)."""
    container = fileformat.unpack(blob)
    header = container.header
    for name, value in changes.items():
        setattr(header, name, value)
    return fileformat.pack(header, container.bits, container.model_arrays)


# ------------------------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("method", ["equalinfo", "ac", "staticac", "gzip"])
@pytest.mark.parametrize("name", list(INPUTS))
def test_round_trip_every_method(method, name):
    data = INPUTS[name]
    blob, header = codec.compress_bytes(data, method, model=None if method in ("gzip", "staticac") else markov(data))
    assert blob.startswith(fileformat.MAGIC)
    out, read_header = codec.decompress_bytes(blob)
    assert out == data
    assert read_header == header
    assert read_header.original_length == len(data) and read_header.original_crc32 == zlib.crc32(data)


@pytest.mark.parametrize("window_bits", [16, 24, 32, 64])
def test_equalinfo_window_sizes_and_payload_length(window_bits):
    data = TEXT[:300]
    blob, header = codec.compress_bytes(data, "equalinfo", markov(data), window_bits=window_bits)
    assert header.window_bits == window_bits and header.coded_bits % window_bits == 0
    n_segments = -(-len(data) // codec.DEFAULT_SEGMENT_BYTES)  # the segment table sits before the payload
    assert len(blob) == (fileformat.HEADER_SIZE + header.model_length + segments.table_size(n_segments)
                         + -(-header.coded_bits // 8) + 4)
    assert codec.decompress_bytes(blob)[0] == data


def test_unigram_model_with_ac_and_precision_16():
    data = INPUTS["non-utf8"]
    blob, header = codec.compress_bytes(data, "ac", UnigramModel.fit(bytes_to_symbols(data)), precision=16)
    assert (header.model_kind, header.precision) == ("unigram", 16)
    assert codec.decompress_bytes(blob)[0] == data


def test_every_backend_writes_and_reads_the_same_files():
    """The file tool codes with a backend: ref's and fast.cpu's coders give the same file bytes, and each reads the
    other's files."""
    data = TEXT[:400] + INPUTS["random binary"][:100]
    ref_coders, cpu_coders = backends.load("ref"), backends.load("cpu")
    for method, options in [("equalinfo", {"model": markov(TEXT), "window_bits": 24}), ("ac", {"model": markov(TEXT)}),
                            ("staticac", {})]:
        blob, _ = codec.compress_bytes(data, method, backend=ref_coders, **options)
        assert codec.compress_bytes(data, method, backend=cpu_coders, **options)[0] == blob, method
        assert codec.decompress_bytes(blob, backend=cpu_coders)[0] == data
        assert codec.decompress_bytes(blob, backend=ref_coders)[0] == data


def test_files_are_deterministic():
    """Same input, same bytes: the embedded npz must not carry timestamps."""
    first = compressed(INPUTS["text"])
    assert compressed(INPUTS["text"]) == first
    archive = fileformat.arrays_to_npz({"b": np.arange(3), "a": np.ones((2, 2))})
    assert archive == fileformat.arrays_to_npz({"a": np.ones((2, 2)), "b": np.arange(3)})
    with zipfile.ZipFile(io.BytesIO(archive)) as members:
        assert [(m.filename, m.date_time) for m in members.infolist()] == [("a.npy", (1980, 1, 1, 0, 0, 0)),
                                                                            ("b.npy", (1980, 1, 1, 0, 0, 0))]


def test_pack_unpack_fields_and_odd_bit_lengths():
    for n_bits in (0, 1, 7, 8, 9, 61):
        bits = RNG.integers(0, 2, n_bits).astype(np.uint8)
        model = UnigramModel.fit(np.array([1, 2, 2]))
        header = Header("ac", 13, 0, "unigram", fingerprint(model.arrays()), 40, 0, 0xDEADBEEF)
        container = fileformat.unpack(fileformat.pack(header, bits, None))
        assert np.array_equal(container.bits, bits) and container.model_arrays is None
        assert container.header == Header("ac", 13, 0, "unigram", fingerprint(model.arrays()), 40, n_bits,
                                          0xDEADBEEF, 0)


def test_header_layout_is_the_documented_one():
    blob = compressed(b"abc", "gzip")
    assert blob[:8] == b"\x89EQI\r\n\x1a\n" and blob[8:10] == b"\x02\x00" and blob[10] == 0  # gzip = 0
    assert int.from_bytes(blob[64:72], "little") == 3  # original length
    assert int.from_bytes(blob[80:84], "little") == zlib.crc32(b"abc")
    assert int.from_bytes(blob[92:96], "little") == zlib.crc32(blob[:92])
    assert int.from_bytes(blob[-4:], "little") == zlib.crc32(blob[:-4])


# ---------------------------------------------------------------------------------------------- damaged files

def test_bad_magic():
    assert "not an equalinfo file" in expect("not-equalinfo", fileformat.unpack, b"hello, this is plain text" * 9)
    assert "not an equalinfo file" in expect("not-equalinfo", fileformat.unpack, b"PK\x03\x04")


def test_future_and_unknown_versions_are_refused_by_name():
    blob = bytearray(compressed(method="gzip"))
    blob[8:10] = (4).to_bytes(2, "little")
    message = expect("version", codec.decompress_bytes, bytes(blob))
    assert "unsupported format version 4" in message and "upgrade" in message
    blob[8:10] = (0).to_bytes(2, "little")
    assert "unsupported format version 0" in expect("version", fileformat.unpack, bytes(blob))


@pytest.mark.parametrize("method", ["equalinfo", "gzip"])
def test_every_truncation_is_reported_as_truncated(method):
    blob = compressed(TEXT[:120], method)
    for length in range(len(blob)):
        assert "truncated file" in expect("truncated", codec.decompress_bytes, blob[:length])


def test_every_single_byte_flip_is_caught_before_decoding():
    """Flip each byte of a file with a model and a payload: the magic, version or a CRC must catch it."""
    blob = compressed(TEXT[:100], "staticac")
    expected = {"not-equalinfo": range(0, 8), "version": range(8, 10)}
    for index in range(len(blob)):
        damaged = bytearray(blob)
        damaged[index] ^= 0x5A
        with pytest.raises(FormatError) as caught:
            fileformat.unpack(bytes(damaged))
        cause = next((c for c, where in expected.items() if index in where), "corrupt")
        assert caught.value.cause == cause, (index, str(caught.value))


def test_payload_flip_says_corrupt_checksum():
    blob = bytearray(compressed())
    blob[-10] ^= 0x01
    assert "corrupt file: checksum mismatch" in expect("corrupt", codec.decompress_bytes, bytes(blob))


def test_trailing_garbage_is_corrupt():
    assert "unexpected bytes" in expect("corrupt", fileformat.unpack, compressed(method="gzip") + b"\0")


def test_payload_that_does_not_decode_is_corrupt_not_a_traceback():
    header = Header("gzip", 0, 0, "", "", 5, 0, zlib.crc32(b"hello"))
    blob = fileformat.pack(header, RNG.integers(0, 2, 80).astype(np.uint8))
    assert "does not decode" in expect("corrupt", codec.decompress_bytes, blob)


def test_output_crc_is_checked_after_decoding():
    blob = compressed(method="ac")
    message = expect("crc-mismatch", codec.decompress_bytes, with_header(blob, original_crc32=12345))
    assert "output does not match CRC-32" in message
    assert "output does not match" in expect("crc-mismatch", codec.decompress_bytes,
                                             with_header(compressed(method="gzip"), original_length=len(TEXT) + 1))


def test_inconsistent_header_fields_are_corrupt():
    blob = compressed(TEXT[:60], "equalinfo", window_bits=16)
    coded_bits = fileformat.unpack(blob).header.coded_bits
    assert "windows" in expect("corrupt", fileformat.unpack, with_header(blob, window_bits=coded_bits + 1))
    assert "below the precision" in expect("corrupt", fileformat.unpack, with_header(blob, window_bits=8))
    assert "precision 17" in expect("corrupt", fileformat.unpack, with_header(blob, precision=17, window_bits=32))
    assert "must name its model" in expect("corrupt", fileformat.unpack,
                                           with_header(compressed(method="ac"), model_kind=""))


# -------------------------------------------------------------------------------------------------- models

def test_external_model_missing_wrong_and_right():
    data = TEXT[:200]
    model, other = markov(TEXT), markov(TEXT, order=3)
    blob, header = codec.compress_bytes(data, "equalinfo", model, embed=False)
    assert header.model_length == 0
    message = expect("missing-model", codec.decompress_bytes, blob)
    assert header.fingerprint in message and "--model" in message
    message = expect("wrong-model", codec.decompress_bytes, blob, other)
    assert header.fingerprint in message and fingerprint(other.arrays()) in message
    assert codec.decompress_bytes(blob, model)[0] == data


def test_given_model_must_match_an_embedded_one_too():
    blob = compressed(TEXT[:100], "ac")
    expect("wrong-model", codec.decompress_bytes, blob, markov(TEXT, 1))
    assert codec.decompress_bytes(blob, markov(TEXT[:100]))[0] == TEXT[:100]


def test_model_file_round_trip_and_bad_model_files(tmp_path):
    for model in (markov(TEXT, 3), UnigramModel.fit(bytes_to_symbols(TEXT))):
        path = tmp_path / f"{model.kind}.npz"
        path.write_bytes(fileformat.model_file_bytes(model))
        loaded = fileformat.load_model_file(path)
        assert loaded.kind == model.kind and fingerprint(loaded.arrays()) == fingerprint(model.arrays())
    (tmp_path / "text.npz").write_bytes(TEXT)
    assert "not a model file" in expect("bad-model-file", fileformat.load_model_file, tmp_path / "text.npz")
    np.savez(tmp_path / "nokind.npz", counts=np.zeros(257, np.int64))
    assert "__kind__" in expect("bad-model-file", fileformat.load_model_file, tmp_path / "nokind.npz")
    # an object array would need pickle to load: it must be refused, never unpickled
    buffer = io.BytesIO()
    np.savez(buffer, __kind__=np.array("unigram"), counts=np.array([object()], dtype=object))
    (tmp_path / "pickled.npz").write_bytes(buffer.getvalue())
    expect("bad-model-file", fileformat.load_model_file, tmp_path / "pickled.npz")
    np.savez(tmp_path / "badcounts.npz", __kind__=np.array("unigram"), counts=np.zeros(5, np.int64))
    assert "not a valid model file" in expect("bad-model-file", fileformat.load_model_file,
                                              tmp_path / "badcounts.npz")
