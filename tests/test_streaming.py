"""Streams (filetool/streaming.py): the same bytes as the whole-buffer coder, in bounded memory."""
import io
import tracemalloc
import zlib

import numpy as np
import pytest

from helpers import english_text
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train import backends
from equalinfo.filetool import codec, fileformat, streaming
from equalinfo.filetool.fileformat import FormatError

TEXT = english_text(2000)
MODEL = MarkovModel.fit(bytes_to_symbols(TEXT), 2)


def stream_compress(data, model=MODEL, **kwargs):
    out = io.BytesIO()
    header = streaming.compress_stream(io.BytesIO(data), out, model, **kwargs)
    return out.getvalue(), header


def stream_decompress(blob, model=None, **kwargs):
    out = io.BytesIO()
    header = streaming.decompress_stream(io.BytesIO(blob), out, model, **kwargs)
    return out.getvalue(), header


@pytest.mark.parametrize("method", ["equalinfo", "ac"])
@pytest.mark.parametrize("embed", [True, False])
@pytest.mark.parametrize("n_bytes", [0, 1, 300, 2000])
def test_stream_equals_whole_buffer_byte_for_byte(method, embed, n_bytes):
    """Segments of 100 bytes read 3 at a time: several batches, a short last one, and the same file."""
    data = TEXT[:n_bytes]
    blob, header = stream_compress(data, method=method, embed=embed, segment_bytes=100, batch_segments=3)
    whole, whole_header = codec.compress_bytes(data, method, MODEL, embed, segment_bytes=100)
    assert blob == whole and header == whole_header
    for batch in (1, 3, 50):
        back, _ = stream_decompress(blob, None if embed else MODEL, batch_segments=batch)
        assert back == data


def test_stream_on_cpu_equals_ref():
    cpu = backends.load("cpu")
    blob, _ = stream_compress(TEXT, segment_bytes=256, batch_segments=2, backend=cpu)
    assert blob == codec.compress_bytes(TEXT, "equalinfo", MODEL, segment_bytes=256)[0]
    assert stream_decompress(blob, backend=cpu)[0] == TEXT


def test_version_2_files_decode_as_a_stream():
    old = codec.compress_bytes(TEXT, "ac", MODEL, segment_bytes=None)[0]
    assert old[8:10] == b"\x02\x00" and stream_decompress(old)[0] == TEXT
    assert stream_decompress(codec.compress_bytes(TEXT, "gzip")[0])[0] == TEXT


def test_methods_that_need_the_whole_input_do_not_stream():
    for method in ("staticac", "gzip", "stored"):
        with pytest.raises(ValueError, match="does not stream"):
            stream_compress(TEXT, method=method)


def expect(cause, blob, words, **kwargs):
    with pytest.raises(FormatError) as caught:
        stream_decompress(blob, **kwargs)
    assert caught.value.cause == cause and words in str(caught.value), str(caught.value)


def test_damaged_streams_give_one_clear_error():
    blob, _ = stream_compress(TEXT, segment_bytes=500)
    container = fileformat.unpack(blob)
    payload_start = len(blob) - 4 - len(container.payload)
    damaged = bytearray(blob)
    damaged[payload_start + 3] ^= 1  # inside segment 0's payload
    expect("corrupt", bytes(damaged), "segment 0's checksum mismatch")
    expect("truncated", blob[:payload_start + 10], "ends inside segment")
    expect("truncated", blob[:-2], "ends before its checksum")
    expect("corrupt", blob + b"x", "after the end")
    expect("not-equalinfo", b"hello" * 30, "bad magic")
    expect("truncated", blob[:50], "truncated")
    other = MarkovModel.fit(bytes_to_symbols(TEXT[:500]), 1)
    external, _ = stream_compress(TEXT, embed=False)
    expect("missing-model", external, "missing model")
    expect("wrong-model", external, "wrong model", model=other)


class Generated:
    """A readable stream of n_bytes made on demand (never held whole): a repeating English sentence."""

    def __init__(self, n_bytes):
        self.left, self.pattern = n_bytes, b"The quick brown fox jumps over the lazy dog. " * 100

    def read(self, n_bytes=-1):
        n_bytes = self.left if n_bytes < 0 else min(n_bytes, self.left, len(self.pattern))
        self.left -= n_bytes
        return self.pattern[:n_bytes]


class Sink:
    """A writable stream that keeps only its length and CRC-32."""

    def __init__(self):
        self.length, self.crc = 0, 0

    def write(self, data):
        self.length, self.crc = self.length + len(data), zlib.crc32(data, self.crc)
        return len(data)


def test_memory_is_bounded_by_the_batch_not_the_input():
    """4 MiB through the cpu coders in batches of 2 x 16 KiB: the peak traced memory stays below 64 bytes per
    batch byte plus 1 MiB (whole-buffer coding would hold the 32 MiB of int64 symbols alone)."""
    cpu = backends.load("cpu")
    model = UnigramModel.fit(bytes_to_symbols(Generated(4500).read()))
    n_bytes, segment_bytes, batch = 4 << 20, 16 << 10, 2
    warm = io.BytesIO()  # compile (or load from Numba's cache) both coders before tracing: a compile inside the
    streaming.compress_stream(Generated(100_000), warm, model, "ac", backend=cpu)  # traced part allocates MBs of
    warm.seek(0)  # the compiler's own objects (seen as a rare failure when no earlier test had run the decoder)
    streaming.decompress_stream(warm, Sink(), backend=cpu)
    compressed = io.BytesIO()
    tracemalloc.start()
    try:
        header = streaming.compress_stream(Generated(n_bytes), compressed, model, "ac", backend=cpu,
                                           segment_bytes=segment_bytes, batch_segments=batch)
        compress_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        compressed.seek(0)
        sink = Sink()
        streaming.decompress_stream(compressed, sink, backend=cpu, batch_segments=batch)
        decompress_peak = tracemalloc.get_traced_memory()[1] - len(compressed.getvalue())
    finally:
        tracemalloc.stop()
    bound = 64 * segment_bytes * batch + (1 << 20)
    assert header.original_length == sink.length == n_bytes and sink.crc == header.original_crc32
    assert compress_peak - len(compressed.getvalue()) < bound, (compress_peak, bound)
    assert decompress_peak < bound, (decompress_peak, bound)
