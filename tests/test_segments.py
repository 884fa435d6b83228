"""Format version 3: inputs coded in independent segments (filetool/segments.py), and the table checked like the
header: every damaged or lying table is one clear FormatError, found before any segment is decoded."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import english_text
from equalinfo.ref import ac as ref_ac
from equalinfo.ref import equalinfo as ref_equalinfo
from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.train import backends
from equalinfo.filetool import codec, fileformat, segments
from equalinfo.filetool.fileformat import FormatError

TEXT = english_text(700)
MODEL = MarkovModel.fit(bytes_to_symbols(TEXT), 2)
SEGMENT = 128  # 700 bytes -> 5 full segments and one of 60


def segmented(method="equalinfo", data=TEXT, segment_bytes=SEGMENT, backend=None, **kwargs):
    model = None if method == "staticac" else MODEL
    return codec.compress_bytes(data, method, model, segment_bytes=segment_bytes, backend=backend, **kwargs)[0]


def table_offset(blob):
    """Where the segment table starts: after the header and the embedded model (read from the header's bytes)."""
    return fileformat.HEADER_SIZE + struct.unpack_from("<Q", blob, 84)[0]


def expect_corrupt(blob, words):
    with pytest.raises(FormatError) as caught:
        codec.decompress_bytes(blob)
    assert caught.value.cause == "corrupt" and words in str(caught.value), str(caught.value)


@pytest.mark.parametrize("method", ["equalinfo", "ac", "staticac"])
def test_segmented_round_trip_and_every_segment_coded_alone(method):
    """Each segment's bits are those of its bytes compressed alone (a fresh coder and model state), in order."""
    blob = segmented(method, window_bits=24)
    container = fileformat.unpack(blob)
    assert container.header.version == 3 and len(container.segments.entries) == 6
    model = MODEL if method != "staticac" else fileformat.resolve_model(container)
    for index, bits in enumerate(container.segment_bits()):
        piece = bytes_to_symbols(TEXT[index * SEGMENT:(index + 1) * SEGMENT])
        alone = (ref_equalinfo.compress(piece, model, 24) if method == "equalinfo" else ref_ac.compress(piece, model))
        assert np.array_equal(bits, alone)
    assert codec.decompress_bytes(blob)[0] == TEXT


@pytest.mark.parametrize("method", ["equalinfo", "ac"])
def test_ref_and_cpu_write_the_same_segmented_files(method):
    """fast.cpu codes the segments as one batch (lockstep); the file is ref's byte for byte, and each decodes the
    other's."""
    cpu = backends.load("cpu")
    ref_blob, cpu_blob = segmented(method), segmented(method, backend=cpu)
    assert ref_blob == cpu_blob
    assert codec.decompress_bytes(ref_blob, backend=cpu)[0] == TEXT


@pytest.mark.parametrize("n_bytes", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
def test_segment_boundaries(n_bytes):
    blob = segmented(data=TEXT[:n_bytes])
    table = fileformat.unpack(blob).segments
    assert table.input_lengths(n_bytes) == segments.segment_lengths(n_bytes, SEGMENT)
    assert sum(table.input_lengths(n_bytes)) == n_bytes and len(table.entries) == -(-n_bytes // SEGMENT)
    assert codec.decompress_bytes(blob)[0] == TEXT[:n_bytes]


def test_version_2_files_of_the_old_writer_still_decode():
    """segment_bytes=None is the version 2 writer (one stream); its files decode, and equal version 3's one-segment
    payload bit for bit (the same coding, another container)."""
    old = segmented(segment_bytes=None)
    assert old[8:10] == b"\x02\x00" and codec.decompress_bytes(old)[0] == TEXT
    one_segment = segmented(segment_bytes=len(TEXT))
    assert np.array_equal(fileformat.unpack(old).bits, fileformat.unpack(one_segment).bits)


def test_bad_segment_sizes_are_refused():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="segment_bytes"):
            segmented(segment_bytes=bad)
    with pytest.raises(ValueError, match="more than"):
        segments.check_segment_bytes(1, segments.MAX_SEGMENTS + 1)


# ---------------------------------------------------------------------------------------------- damaged tables

def with_table(blob, segment_bytes=None, n_segments=None, entry=None):
    """The file with table fields replaced (entry: (index, coded_bits, crc)) and the table's two CRCs and the file
    CRC recomputed where the entries really are: a table that lies, well-formed."""
    blob, start = bytearray(blob), table_offset(blob)
    entries_end = start + segments.table_size(struct.unpack_from("<Q", blob, start + 8)[0]) - 4
    if segment_bytes is not None:
        blob[start:start + 8] = struct.pack("<Q", segment_bytes)
    if n_segments is not None:
        blob[start + 8:start + 16] = struct.pack("<Q", n_segments)
    if entry is not None:
        index, bits, crc = entry
        blob[start + 20 + 12 * index:start + 32 + 12 * index] = struct.pack("<QI", bits, crc)
    blob[start + 16:start + 20] = struct.pack("<I", zlib.crc32(bytes(blob[start:start + 16])))
    blob[entries_end:entries_end + 4] = struct.pack("<I", zlib.crc32(bytes(blob[start + 20:entries_end])))
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    return bytes(blob)


def test_every_byte_flip_in_the_table_is_corrupt_before_decoding():
    blob = segmented()
    start = table_offset(blob)
    for offset in range(start, start + segments.table_size(6)):
        damaged = bytearray(blob)
        damaged[offset] ^= 0x10
        expect_corrupt(bytes(damaged), "checksum mismatch")


def test_tables_that_lie_are_corrupt_with_one_clear_reason():
    blob = segmented()
    bits = [n for n, _ in fileformat.unpack(blob).segments.entries]
    expect_corrupt(with_table(blob, segment_bytes=0), "segment size 0")
    expect_corrupt(with_table(blob, segment_bytes=SEGMENT * 2), "segments, but")
    expect_corrupt(with_table(blob, n_segments=segments.MAX_SEGMENTS + 1), "above the")
    expect_corrupt(with_table(blob, entry=(0, bits[0] + 16, 0)), "the header says")
    moved = with_table(with_table(blob, entry=(0, bits[0] + 1, 0)), entry=(1, bits[1] - 1, 0))  # the same sum
    expect_corrupt(moved, "whole number")


def test_a_segment_too_short_for_its_bytes_is_corrupt():
    """Bits moved from one segment to another keep the sum: the per-segment capacity catches it."""
    blob = segmented(method="ac")
    entries = fileformat.unpack(blob).segments.entries
    moved = with_table(with_table(blob, entry=(0, 0, 0)), entry=(1, entries[1][0] + entries[0][0], 0))
    expect_corrupt(moved, "do not fit")


def test_a_segment_payload_that_does_not_match_its_crc_is_corrupt():
    """The file CRC resealed over a damaged segment: the segment's own CRC-32 names it."""
    blob = segmented()
    entries = fileformat.unpack(blob).segments.entries
    expect_corrupt(with_table(blob, entry=(2, entries[2][0], entries[2][1] ^ 1)), "segment 2's checksum mismatch")


def test_truncation_inside_the_table_is_truncated():
    blob = segmented()
    start = table_offset(blob)
    for length in range(start, start + segments.table_size(6) + 1):
        with pytest.raises(FormatError) as caught:
            codec.decompress_bytes(blob[:length])
        assert caught.value.cause == "truncated", str(caught.value)


def test_a_version_3_gzip_file_is_corrupt():
    blob = bytearray(codec.compress_bytes(TEXT, "gzip")[0])
    blob[8:10] = b"\x03\x00"
    blob[92:96] = struct.pack("<I", zlib.crc32(bytes(blob[:92])))
    expect_corrupt(bytes(blob), "has no segments")


SEED = segmented(method="ac", data=TEXT[:400], segment_bytes=100)
FIELD = st.sampled_from(["segment_bytes", "n_segments", "bits", "crc"])
VALUES = st.one_of(st.sampled_from([0, 1, 7, 8, 100, 2 ** 20, 2 ** 32, 2 ** 63, 2 ** 64 - 1]),
                   st.integers(0, 2 ** 64 - 1), st.integers(-3, 3))


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(FIELD, st.integers(0, 3), VALUES), min_size=1, max_size=3))
def test_fuzz_segment_tables(changes):
    """Resealed table fields (near their value or anywhere): a clear FormatError, or the original's bytes."""
    blob = SEED
    for field, index, value in changes:
        table = fileformat.unpack(SEED).segments
        now = {"segment_bytes": table.segment_bytes, "n_segments": len(table.entries),
               "bits": table.entries[index][0], "crc": table.entries[index][1]}[field]
        value = (now + value if -3 <= value <= 3 else value) % (2 ** 64 if field != "crc" else 2 ** 32)
        if field in ("segment_bytes", "n_segments"):
            blob = with_table(blob, **{field: value})
        else:
            bits, crc = (value, table.entries[index][1]) if field == "bits" else (table.entries[index][0], value)
            blob = with_table(blob, entry=(index, bits, crc))
    try:
        data, header = codec.decompress_bytes(blob)
    except FormatError as error:
        assert error.cause in ("corrupt", "truncated", "crc-mismatch") and "\n" not in str(error)
    else:
        assert len(data) == header.original_length and zlib.crc32(data) == header.original_crc32
