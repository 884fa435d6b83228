"""The segment table of a version 3 `.eqi` file: the input cut into independently coded pieces.

Why segments: one long input coded as one sequence is one stream, so one core and one model call per step. Cut
into segments of `segment_bytes` input bytes (the last one shorter), each coded with a fresh coder and a fresh model
state, a file is many streams: the coders run all of them in lockstep as one batch (fast/cpu/lockstep.py, one M1
call per step for every segment), and a reader holds one batch of segments at a time (filetool/streaming.py), so
inputs larger than memory code and decode. The price is each segment's coder flush and, for Equal-Info, its last,
partly filled window: bench/segment_cost.py measures it (docs/file-format.md gives the numbers).

Layout, right after the embedded model, all integers little-endian:

    size      field
       8      segment_bytes    uint64: input bytes per segment (the last segment holds the rest, 1..segment_bytes)
       8      n_segments       uint64: ceil(original_length / segment_bytes); 0 for an empty input
       4      counts_crc32     uint32: zlib.crc32 of the 16 bytes before it
    12 * n    entries          per segment: coded_bits uint64 (its bitstream's length) and payload_crc32 uint32
                               (zlib.crc32 of its payload bytes, checked before that segment is decoded)
       4      entries_crc32    uint32: zlib.crc32 of the entries

The payload that follows is each segment's bits packed MSB first and zero-padded to a whole byte, in order. The
header's coded_bits is the sum of the entries' coded_bits. A table is checked as a whole before any segment is
read (`check_table`): its CRCs, its count against the original length, every segment's bits against what its input
bytes can need (limits.py's capacities, per segment) and the sum against the header's. The counts have their own
CRC for the header's reason (filetool/fileformat.py): the table's length is read from them, so a damaged count
must read as *corrupt*, never as a truncated file.
"""
import struct
import zlib
from dataclasses import dataclass

from equalinfo import limits

MAX_SEGMENTS = 1 << 20  # a table of at most 12 MiB: readers and writers hold it whole
_COUNTS = struct.Struct("<QQ")
_ENTRY = struct.Struct("<QI")
_CRC = struct.Struct("<I")
COUNTS_SIZE = _COUNTS.size + _CRC.size  # the table's fixed start: segment_bytes, n_segments, counts_crc32


class TableError(ValueError):
    """A segment table that is damaged or contradicts the header; the file format turns it into FormatError."""


@dataclass
class SegmentTable:
    """segment_bytes and, per segment, (coded_bits, payload_crc32)."""
    segment_bytes: int
    entries: list

    def payload_lengths(self):
        """Bytes of each segment's packed payload."""
        return [-(-bits // 8) for bits, _ in self.entries]

    def input_lengths(self, original_length):
        """Input bytes of each segment: segment_bytes, and the rest in the last."""
        return segment_lengths(original_length, self.segment_bytes)

    def to_bytes(self):
        counts = _COUNTS.pack(self.segment_bytes, len(self.entries))
        entries = b"".join(_ENTRY.pack(bits, crc) for bits, crc in self.entries)
        return counts + _CRC.pack(zlib.crc32(counts)) + entries + _CRC.pack(zlib.crc32(entries))


def table_size(n_segments):
    """Bytes of a table of n segments."""
    return COUNTS_SIZE + _ENTRY.size * n_segments + _CRC.size


def segment_lengths(n_bytes, segment_bytes):
    """Input bytes of each segment of an n-byte input ([] for an empty one)."""
    full, rest = divmod(n_bytes, segment_bytes)
    return [segment_bytes] * full + ([rest] if rest else [])


def check_segment_bytes(segment_bytes, n_bytes=0):
    """ValueError unless segment_bytes is a positive integer cutting n_bytes into at most MAX_SEGMENTS segments."""
    if not isinstance(segment_bytes, int) or isinstance(segment_bytes, bool) or segment_bytes < 1:
        raise ValueError(f"segment_bytes must be a positive integer, got {segment_bytes!r}")
    if -(-n_bytes // segment_bytes) > MAX_SEGMENTS:
        raise ValueError(f"{n_bytes:,} bytes in segments of {segment_bytes:,} make more than {MAX_SEGMENTS:,} "
                         "segments; use larger segments")


def read_counts(data):
    """(segment_bytes, n_segments) of a table's first COUNTS_SIZE bytes; TableError if damaged or impossible."""
    (stored,) = _CRC.unpack_from(data, _COUNTS.size)
    if zlib.crc32(data[:_COUNTS.size]) != stored:
        raise TableError("segment counts checksum mismatch")
    segment_bytes, n_segments = _COUNTS.unpack_from(data)
    if segment_bytes < 1:
        raise TableError("segment size 0")
    if n_segments > MAX_SEGMENTS:
        raise TableError(f"{n_segments:,} segments, above the {MAX_SEGMENTS:,} allowed")
    return segment_bytes, n_segments


def parse_table(data, header):
    """The SegmentTable of `data` (exactly the table's bytes), checked against the header (check_table)."""
    segment_bytes, n_segments = read_counts(data)
    if len(data) != table_size(n_segments):
        raise TableError(f"the table holds {len(data)} bytes, {n_segments:,} segments need {table_size(n_segments)}")
    (stored,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[COUNTS_SIZE:-_CRC.size]) != stored:
        raise TableError("segment table checksum mismatch")
    entries = [_ENTRY.unpack_from(data, COUNTS_SIZE + _ENTRY.size * i) for i in range(n_segments)]
    table = SegmentTable(segment_bytes, entries)
    check_table(table, header)
    return table


def check_table(table, header):
    """TableError naming the first contradiction between the table, the header and the limits."""
    wanted = -(-header.original_length // table.segment_bytes)
    if len(table.entries) != wanted:
        raise TableError(f"{len(table.entries):,} segments, but {header.original_length:,} bytes in segments of "
                         f"{table.segment_bytes:,} make {wanted:,}")
    total = sum(bits for bits, _ in table.entries)
    if total != header.coded_bits:
        raise TableError(f"the segments hold {total:,} bits, the header says {header.coded_bits:,}")
    for index, ((bits, _), n_bytes) in enumerate(zip(table.entries, table.input_lengths(header.original_length))):
        problem = segment_problem(header, bits, n_bytes)
        if problem:
            raise TableError(f"segment {index}: {problem}")


def segment_problem(header, bits, n_bytes):
    """Why `bits` coded bits cannot hold a segment of n_bytes input bytes with the header's method, or None."""
    if header.method == "equalinfo":
        if bits % header.window_bits:
            return f"{bits:,} bits is not a whole number of {header.window_bits}-bit windows"
        fewest, most = limits.equalinfo_capacity(bits, header.window_bits, header.precision)
    else:
        fewest, most = 0, limits.ac_capacity(bits, header.precision)
    if not fewest <= n_bytes <= most:
        return f"{n_bytes:,} bytes do not fit {bits:,} coded bits"
    return None
