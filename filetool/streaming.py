"""Compress and decompress over file objects, one batch of segments at a time: inputs larger than memory.

A version 3 file (filetool/segments.py) codes its input in independent segments, so a coder needs only the segments
it is working on. `compress_stream` reads `batch_segments` segments of the input, codes them as one batch (as
codec.compress_bytes codes all of a file's), writes their payloads to a temporary spool file and keeps only their
table entries; at the end it writes the header (whose original length and CRC-32 are known only then), the model,
the table, the spooled payload and the file CRC. `decompress_stream` reads the header, the model and the table,
then one batch of segment payloads at a time, checks each payload's CRC-32 before decoding it, and writes the
decoded bytes as it goes; the file's CRC-32 and the original's are checked at the end.

Memory: one batch (batch_segments * segment_bytes input bytes, with the int64 symbols and 0/1 bit arrays the coders
hold for them; with workers > 1, each process its group of the batch and its own copy of the model), the table (12
bytes per segment, at most segments.MAX_SEGMENTS: 12 MiB) and the model; never the whole input or output. Measured
by bench/stream_memory.py (8 MiB through fast.cpu's AC with a unigram model, traced peaks, 2-vCPU dev machine):
12.7 MB compressing and 26.3 MB decompressing with the default batch (64 x 16 KiB = 1 MiB), 2.5 and 1.0 MB with
batches of 2 x 16 KiB, against 125 and 165 MB coding the 8 MiB whole; so about 25 bytes per batch byte plus ~1 MB,
plus M1's own activations when M1 codes. tests/test_streaming.py holds the peak under 64 bytes per batch byte plus
1 MiB. Disk: the spool holds the payload until the header can be written. Version 1 and 2 files (one stream) are
decoded whole, within the whole-buffer limits.

The output equals codec.compress_bytes's byte for byte (the same segments, coded by the same functions), for the
coded methods ac and equalinfo with a model given; the stream never falls back to `stored` (that needs the whole
input, compared at the end) and staticac needs the whole input to fit its model, so neither streams. Written
bytes are not taken back: decompress_stream raises FormatError on the first problem, after writing the segments
before it, each of which passed its own CRC-32 (the Python API and the CLI write files atomically, whole).
"""
import shutil
import tempfile
import zlib
from contextlib import ExitStack

import numpy as np

from equalinfo import limits
from equalinfo.filetool import codec, fileformat, shipped_model
from equalinfo.filetool import workers as workers_module
from equalinfo.filetool.fileformat import FormatError
from equalinfo.filetool.segments import COUNTS_SIZE, MAX_SEGMENTS, check_segment_bytes
from equalinfo.ref.symbols import bytes_to_symbols, symbols_to_bytes
from equalinfo.train import backends

DEFAULT_BATCH_SEGMENTS = 64  # segments coded together: 1 MiB of input with 16 KiB segments
STREAM_METHODS = ("ac", "equalinfo")
COPY_CHUNK = 1 << 20


def compress_stream(src, dst, model, method="equalinfo", embed=True, window_bits=16, precision=14, backend=None,
                    segment_bytes=codec.DEFAULT_SEGMENT_BYTES, batch_segments=DEFAULT_BATCH_SEGMENTS,
                    progress=None, workers=1):
    """Compress the binary stream src into dst (a version 3 file); returns its Header.

    model, embed, window_bits, precision and backend as in codec.compress_bytes; batch_segments: segments read and
    coded together (memory grows with it, see the module docstring); workers: processes coding each batch (1, N
    or "auto" decided on the first batch's bytes; filetool/workers.py), one pool for the whole stream."""
    workers_module.check_workers(workers)
    if method not in STREAM_METHODS:
        raise ValueError(f"method {method!r} does not stream; choose one of {', '.join(STREAM_METHODS)}")
    check_segment_bytes(segment_bytes)
    if not isinstance(batch_segments, int) or batch_segments < 1:
        raise ValueError(f"batch_segments must be a positive integer, got {batch_segments!r}")
    backend = backend or backends.load("ref")
    header, coder_model = codec.coded_header(b"", method, model, window_bits, precision, backend)
    entries, length, crc, pool = [], 0, 0, None
    with tempfile.TemporaryFile() as spool, ExitStack() as stack:  # the stack closes the pool (kills it on errors)
        while True:
            chunk = limits.read_at_most(src, segment_bytes * batch_segments)
            if not chunk:
                break
            if pool is None:  # started on the first batch, kept for all the others
                pool = stack.enter_context(workers_module.SegmentPool(
                    workers_module.resolve_workers(workers, coder_model, backend, len(chunk), segment_bytes),
                    coder_model, backend))
            length, crc = length + len(chunk), zlib.crc32(chunk, crc)
            if -(-length // segment_bytes) > MAX_SEGMENTS:
                raise ValueError(f"the input is longer than {MAX_SEGMENTS:,} segments of {segment_bytes:,} bytes; "
                                 "use larger segments")
            symbols = bytes_to_symbols(chunk)
            pieces = [symbols[start:start + segment_bytes] for start in range(0, len(symbols), segment_bytes)]
            for bits in codec.code_segments(pieces, header, coder_model, backend, progress, length - len(chunk),
                                            workers=pool):
                payload, n_bits = fileformat.pack_bits(bits)
                spool.write(payload)
                entries.append((n_bits, zlib.crc32(payload)))
        header.original_length, header.original_crc32 = length, crc
        header.coded_bits, header.version = sum(n for n, _ in entries), fileformat.VERSION
        start = fileformat.pack_start(header, model.arrays() if embed else None)
        start += fileformat.SegmentTable(segment_bytes, entries).to_bytes()
        dst.write(start)
        file_crc = zlib.crc32(start)
        spool.seek(0)
        while True:
            block = spool.read(COPY_CHUNK)
            if not block:
                break
            dst.write(block)
            file_crc = zlib.crc32(block, file_crc)
        dst.write(file_crc.to_bytes(4, "little"))
    return header


class _CheckedReader:
    """A binary stream's exact reads, with the CRC-32 of every byte read so far (the file CRC's input)."""

    def __init__(self, src):
        self.src, self.crc = src, 0

    def read(self, n_bytes, what):
        data = limits.read_at_most(self.src, n_bytes)
        if len(data) < n_bytes:
            raise FormatError("truncated", f"truncated file: it ends inside {what}")
        self.crc = zlib.crc32(data, self.crc)
        return data


def decompress_stream(src, dst, model=None, model_name="the given model", backend=None,
                      batch_segments=DEFAULT_BATCH_SEGMENTS, progress=None, workers=1):
    """Decompress the binary stream src (an .eqi file) into dst; returns its Header. Version 1 and 2 files (one
    stream, no segments) are read and decoded whole, within codec's limits. model None: the embedded model, or
    the shipped M1 if the header names it (shipped_model.load_for). FormatError names any problem. workers:
    processes decoding each batch (1, N or "auto" on the original's length), one pool for the whole stream."""
    workers_module.check_workers(workers)
    start = limits.read_at_most(src, fileformat.HEADER_SIZE)
    if fileformat.check_start(start) != fileformat.VERSION:  # older layouts: one bitstream, decoded whole
        blob = start + limits.read_at_most(src, limits.MAX_FILE_BYTES + 1 - len(start))
        if len(blob) > limits.MAX_FILE_BYTES:
            raise FormatError("corrupt", "corrupt file: longer than the largest version 2 file, "
                                         f"{limits.size_words(limits.MAX_FILE_BYTES)}")
        if model is None:
            model = shipped_model.load_for(fileformat.parse_header(start, max_length=None))
        data, header = codec.decompress_bytes(blob, model, model_name, backend, progress, workers)
        dst.write(data)
        return header
    header = fileformat.parse_header(start, max_length=None)
    if model is None:
        model = shipped_model.load_for(header)
    reader = _CheckedReader(src)
    reader.crc = zlib.crc32(start)
    model_arrays = None
    if header.model_length:
        model_arrays = fileformat.read_model(header, reader.read(header.model_length, "the embedded model"))
    counts = reader.read(COUNTS_SIZE, "the segment table")
    rest = reader.read(fileformat.segment_table_length(counts) - COUNTS_SIZE, "the segment table")
    table = fileformat.read_segment_table(header, counts + rest)
    backend = backend or backends.load("ref")
    container = fileformat.Container(header, model_arrays, b"", table)
    model = codec.as_fingerprinted(model, header.fingerprint)
    coder_model = codec.on_backend(fileformat.resolve_model(container, model, model_name), backend)
    lengths, payload_lengths = table.input_lengths(header.original_length), table.payload_lengths()
    workers = workers_module.resolve_workers(workers, coder_model, backend, header.original_length,
                                             table.segment_bytes)
    with workers_module.SegmentPool(workers, coder_model, backend) as pool:
        written, crc = _decode_batches(reader, dst, table, lengths, payload_lengths, header, coder_model, backend,
                                       batch_segments, progress, pool)
    _check_end(src, reader, header, written, crc)
    return header


def _decode_batches(reader, dst, table, lengths, payload_lengths, header, coder_model, backend, batch_segments,
                    progress, pool):
    """Read, check and decode the segments one batch at a time, writing each batch's bytes to dst; returns
    (bytes written, their CRC-32)."""
    written, crc = 0, 0
    for first in range(0, len(table.entries), batch_segments):
        batch = range(first, min(first + batch_segments, len(table.entries)))
        bit_arrays = []
        for index in batch:
            payload = reader.read(payload_lengths[index], f"segment {index}")
            n_bits, payload_crc = table.entries[index]
            fileformat.check_segment_payload(index, payload, payload_crc)
            bit_arrays.append(fileformat.unpack_bits(payload, n_bits))
        try:
            pieces = codec.decode_segments(bit_arrays, [lengths[i] for i in batch], header, coder_model, backend,
                                           progress, written, workers=pool)
        except ValueError as error:  # WindowError, CoderError
            raise FormatError("corrupt", f"corrupt file: the payload does not decode ({error})") from None
        data = symbols_to_bytes(np.concatenate(pieces))
        dst.write(data)
        written, crc = written + len(data), zlib.crc32(data, crc)
    return written, crc


def _check_end(src, reader, header, written, crc):
    """FormatError unless the file ends with its checksum right after the segments and the decoded bytes are the
    original's (length and CRC-32)."""
    file_crc = reader.crc
    trailer = limits.read_at_most(src, fileformat.TRAILER_SIZE)
    if len(trailer) < fileformat.TRAILER_SIZE:
        raise FormatError("truncated", "truncated file: it ends before its checksum")
    if limits.read_at_most(src, 1):
        raise FormatError("corrupt", "corrupt file: unexpected bytes after the end")
    if int.from_bytes(trailer, "little") != file_crc:
        raise FormatError("corrupt", "corrupt file: checksum mismatch (the model or payload was damaged)")
    if written != header.original_length or crc != header.original_crc32:
        raise FormatError("crc-mismatch", f"output does not match: decoded {written:,} bytes with CRC-32 "
                                          f"{crc:08x}, the original had {header.original_length:,} with "
                                          f"{header.original_crc32:08x}")

