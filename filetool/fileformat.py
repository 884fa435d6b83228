"""The `.eqi` container: one compressed file, self-describing and checked before and after decoding.

A file holds what a decoder needs besides the model: the method and its settings, which model coded it (its
SHA-256 fingerprint, and optionally the model itself), the original length (the decoder's symbol count: the input's
last Equal-Info window and plain AC do not delimit themselves) and checksums. Versions 2 and 3 share the header;
all integers little-endian:

    offset size  field
         0    8  magic            b"\\x89EQI\\r\\n\\x1a\\n" (PNG-style: the high byte and CR/LF/^Z catch text-mode
                                  and 7-bit mangling; the rest reads "EQI")
         8    2  version          uint16, 2 or 3. Read before anything else, so a newer layout is refused by name.
        10    1  method           uint8: 0 gzip, 1 ac, 2 equalinfo, 3 staticac, 4 stored
        11    1  precision        uint8: bits of the integer CDFs (ref.arithmetic.quantize); 0 for gzip
        12    4  window_bits      uint32: b of EqualInfoAC[b]; 0 for every other method
        16   16  model_kind       ASCII, NUL-padded: the model's `kind` ("markov", "unigram", ...); empty for gzip
        32   32  model_fingerprint  raw SHA-256 of the model's arrays (ref.fingerprint); all zeros for gzip
        64    8  original_length  uint64: bytes of the original (= symbols coded: one symbol per byte, no EOS added)
        72    8  coded_bits       uint64: length of the coded bitstream in bits
        80    4  original_crc32   uint32: zlib.crc32 of the original bytes, checked after decoding
        84    8  model_length     uint64: bytes of the embedded model; 0 = not embedded (the decoder must be given it)
        92    4  header_crc32     uint32: zlib.crc32 of bytes 0..91
        96    M  model            embedded model, M = model_length: an npz archive of the model's arrays (below)
      96+M    P  payload          the bitstream packed MSB first, P = ceil(coded_bits / 8), zero-padded
    96+M+P    4  file_crc32       uint32: zlib.crc32 of every byte before it (header, model and payload)

Version 3 (written for the coded methods ac, equalinfo and staticac) codes the input in independent segments: a
segment table (filetool/segments.py: the bytes per segment, each segment's coded bits and payload CRC-32, and
CRC-32s of the table's counts and entries) sits between the model and the payload, and the payload is each
segment's bitstream packed on its own, zero-padded to a whole byte. coded_bits is the segments' sum. gzip and
stored files stay version 2 (there is nothing to segment), and the version 2 writer is still there
(codec.compress_bytes with segment_bytes=None).

Version 2 added method 4, `stored`: the input's bytes themselves as the payload (coded_bits = 8 * original_length,
no model, precision and window bits 0), which the CLI writes when coding would not make the file smaller (random
or already-compressed input, tiny files): 100 bytes of header and checksums on top of the input. Version 1 files
(the same layout without `stored`) are still read; a version 1 file naming method 4 is corrupt.

Before anything is allocated or decoded the header's numbers are checked against each other and against
limits.py: original_length against what coded_bits can hold at the coder's precision (or in the payload's
windows, or in a zlib stream of that size) and against MAX_INPUT_BYTES; window_bits against MAX_WINDOW_BITS;
the model's archive against MAX_MODEL_BYTES and its kind's schema (filetool/model_arrays.py).

Why two CRCs: the header CRC makes the length fields trustworthy, so a short file is reported as *truncated* and a
damaged length as *corrupt*, rather than one being mistaken for the other; the file CRC catches any damage to the
model or payload *before* decoding, because a damaged arithmetic-coded payload decodes silently into garbage (or
fails deep inside the coder with an unhelpful message). The original's CRC-32 is checked after decoding as the
end-to-end proof that the bytes written out are the bytes that went in.

Models are stored as npz archives (a zip of .npy files read by filetool/npz.py: sizes checked first, never pickle).
They are written with fixed zip timestamps and names in sorted order, so the same input always gives the same file, byte
for byte. A model *file* (from `equalinfo fit-model`) is the same archive plus a `__kind__` entry (a 0-d string
array) naming the model class; inside a compressed file the kind lives in the header instead.

Every problem raises FormatError, whose message names the cause and whose `cause` attribute is one of
FormatError.CAUSES, so callers and tests can tell them apart without parsing text.
"""
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from equalinfo.ref.arithmetic import MAX_PRECISION
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.stored_models import model_from_arrays
from equalinfo import limits
from equalinfo.filetool.model_arrays import check_model_arrays, check_meta, fits_some_kind
from equalinfo.filetool.npz import read_npz, write_npz
from equalinfo.filetool.segments import (COUNTS_SIZE, SegmentTable, TableError, parse_table, read_counts,
                                         table_size)

MAGIC = b"\x89EQI\r\n\x1a\n"
VERSION = 3  # the newest layout: segmented (filetool/segments.py)
UNSEGMENTED_VERSION = 2  # one bitstream for the whole input; gzip and stored files
READABLE_VERSIONS = (1, 2, 3)
METHODS = ("gzip", "ac", "equalinfo", "staticac", "stored")  # index = the method's code in the header
CODED_METHODS = ("ac", "equalinfo", "staticac")  # methods driven by a model and an arithmetic coder
KIND_BYTES = 16
MIN_PRECISION = 9  # 257 symbols need 2^precision >= 257 (ref.arithmetic.check_precision)

_VERSION = struct.Struct("<H")
_FIELDS = struct.Struct("<8sHBBI16s32sQQIQ")  # magic .. model_length (bytes 0..91)
_CRC = struct.Struct("<I")
HEADER_SIZE = _FIELDS.size + _CRC.size  # 96
TRAILER_SIZE = _CRC.size
KIND_ENTRY = "__kind__"  # the extra entry of a model file


class FormatError(ValueError):
    """A compressed file or model file that cannot be (or was not) decoded correctly; `cause` says why."""

    CAUSES = ("not-equalinfo", "version", "truncated", "corrupt", "wrong-model", "missing-model", "crc-mismatch",
              "bad-model-file")

    def __init__(self, cause, message):
        assert cause in self.CAUSES, cause
        super().__init__(message)
        self.cause = cause


@dataclass
class Header:
    """The header fields of one file (see the module docstring); `fingerprint` is hex, '' for no model."""
    method: str
    precision: int
    window_bits: int
    model_kind: str
    fingerprint: str
    original_length: int
    coded_bits: int
    original_crc32: int
    model_length: int = 0
    version: int = UNSEGMENTED_VERSION  # pack sets it: VERSION when it writes a segment table


@dataclass
class Container:
    """A parsed file: its header, the embedded model's arrays (None if not embedded), the payload bytes and, in a
    version 3 file, its segment table (None before)."""
    header: Header
    model_arrays: dict
    payload: bytes  # ceil(coded_bits / 8) bytes, the bits MSB first (version 3: each segment's, byte-aligned)
    segments: SegmentTable = None

    @property
    def bits(self):
        """uint8 0/1 [coded_bits]: the payload as bits (8 bytes of memory per payload byte, made on demand)."""
        if self.segments is not None:
            pieces = self.segment_bits()
            return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
        return unpack_bits(self.payload, self.header.coded_bits)

    def segment_bits(self):
        """[uint8 0/1 [coded_bits of segment i]] of a version 3 file, one array per segment."""
        pieces, begin = [], 0
        for (n_bits, _), length in zip(self.segments.entries, self.segments.payload_lengths()):
            pieces.append(unpack_bits(self.payload[begin:begin + length], n_bits))
            begin += length
        return pieces


def unpack_bits(payload, n_bits):
    """uint8 0/1 [n_bits] of payload bytes packed MSB first."""
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[:n_bits]


def pack_bits(bits):
    """(payload bytes, n_bits) of uint8 0/1 bits [n], packed MSB first."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 1 or (bits.size and bits.max() > 1):
        raise ValueError("the payload must be a 1-D array of 0/1 bits")
    return np.packbits(bits).tobytes(), len(bits)


# ---------------------------------------------------------------------------------------------------- npz archives

def arrays_to_npz(arrays):
    """Bytes of an npz archive of a dict name -> array, deterministic (filetool/npz.py)."""
    return write_npz(arrays)


def npz_to_arrays(data, check=None):
    """dict name -> array of npz bytes, every size checked before it is read (filetool/npz.py, MAX_MODEL_BYTES);
    raises ValueError if it is not such an archive or check(meta) refuses it."""
    return read_npz(data, limits.MAX_MODEL_BYTES, limits.MAX_MODEL_MEMBERS, check)


# ----------------------------------------------------------------------------------------------------- model files

def model_file_bytes(model):
    """Bytes of a model file: the npz of model.arrays() plus its kind (what `equalinfo fit-model` writes)."""
    arrays = dict(model.arrays())
    if KIND_ENTRY in arrays:
        raise ValueError(f"a model array may not be named {KIND_ENTRY!r}")
    arrays[KIND_ENTRY] = np.array(model.kind)
    return arrays_to_npz(arrays)


def _check_model_file_meta(meta):
    """A model file's arrays before their data is read: a 0-d string kind, and arrays that fit some kind."""
    kind = meta.pop(KIND_ENTRY, None)
    if kind is None or kind[1] != () or kind[0].kind != "U":
        raise LookupError(f"no {KIND_ENTRY} entry")
    fits_some_kind(meta)


def load_model_file(path):
    """The model saved in a model file; FormatError('bad-model-file') naming the path if it is not one."""
    try:
        with open(path, "rb") as handle:
            data = limits.read_at_most(handle, limits.MAX_MODEL_BYTES + 1)
    except OSError as error:
        raise FormatError("bad-model-file", f"cannot read model file {path}: {error.strerror or error}") from None
    if len(data) > limits.MAX_MODEL_BYTES:
        raise FormatError("bad-model-file", f"model file {path} is larger than the "
                                            f"{limits.size_words(limits.MAX_MODEL_BYTES)} allowed")
    if not data.startswith(b"PK"):
        raise FormatError("bad-model-file", f"{path} is not a model file (not an npz archive); "
                                            "make one with `equalinfo fit-model`")
    try:
        arrays = npz_to_arrays(data, lambda meta: _check_model_file_meta(dict(meta)))
    except LookupError as error:
        raise FormatError("bad-model-file", f"{path} is not a model file ({error.args[0]}); "
                                            "make one with `equalinfo fit-model`") from None
    except ValueError as error:
        raise FormatError("bad-model-file", f"{path} is not a valid model file: {error}") from None
    kind = str(arrays.pop(KIND_ENTRY))
    try:
        check_model_arrays(kind, arrays)
        return model_from_arrays(kind, arrays)
    except ValueError as error:  # ModelError is a ValueError
        raise FormatError("bad-model-file", f"{path} is not a valid model file: {error}") from None


# ------------------------------------------------------------------------------------------------------- writing

def pack(header, bits, model_arrays=None, segment_bytes=None):
    """Bytes of a whole file. header.coded_bits and header.model_length are set here, and header.version to 3 with
    segments or to 2 from 3 without them.

    bits: uint8 0/1 [coded_bits], or bytes (whole bytes of payload, as `stored` and gzip have); with segment_bytes,
    a list of such bit arrays, one per segment (a version 3 file)."""
    if segment_bytes is None:
        if isinstance(bits, (bytes, bytearray)):
            payload, n_bits = bytes(bits), 8 * len(bits)
        else:
            payload, n_bits = pack_bits(bits)
        table = b""
    else:
        packed = [pack_bits(piece) for piece in bits]
        payload, n_bits = b"".join(piece for piece, _ in packed), sum(n for _, n in packed)
        table = SegmentTable(segment_bytes, [(n, zlib.crc32(piece)) for piece, n in packed]).to_bytes()
    header.coded_bits = n_bits
    if segment_bytes is not None or header.version == VERSION:  # an older version stays (tests relabel files)
        header.version = UNSEGMENTED_VERSION if segment_bytes is None else VERSION
    return seal(pack_start(header, model_arrays) + table + payload)


def pack_start(header, model_arrays=None):
    """The header and embedded model of a file, its first bytes (header.model_length is set here); everything
    after them, up to the file CRC-32 of all bytes before it, is the caller's (pack, filetool/streaming.py)."""
    if header.method not in METHODS:
        raise ValueError(f"unknown method {header.method!r}; expected one of {', '.join(METHODS)}")
    model = b"" if model_arrays is None else arrays_to_npz(model_arrays)
    if model_arrays is not None and fingerprint(model_arrays) != header.fingerprint:
        raise ValueError("the embedded model's fingerprint differs from the header's")
    header.model_length = len(model)
    kind = header.model_kind.encode("ascii")
    if len(kind) > KIND_BYTES:
        raise ValueError(f"model kind {header.model_kind!r} is longer than {KIND_BYTES} bytes")
    fields = _FIELDS.pack(MAGIC, header.version, METHODS.index(header.method), header.precision,
                          header.window_bits, kind, bytes.fromhex(header.fingerprint or "00" * 32),
                          header.original_length, header.coded_bits, header.original_crc32, header.model_length)
    return fields + _CRC.pack(zlib.crc32(fields)) + model


def seal(body):
    """A file's bytes: body (everything before the file CRC-32) and that CRC."""
    return body + _CRC.pack(zlib.crc32(body))


# ------------------------------------------------------------------------------------------------------- reading

def check_start(data):
    """The format version of a file's first bytes; checks magic, then version: the two checks that must work on
    files of any layout."""
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise FormatError("truncated", f"truncated file: {len(data)} bytes, shorter than the header")
        raise FormatError("not-equalinfo", "not an equalinfo file (bad magic)")
    if data[:len(MAGIC)] != MAGIC:
        raise FormatError("not-equalinfo", "not an equalinfo file (bad magic)")
    if len(data) < len(MAGIC) + _VERSION.size:
        raise FormatError("truncated", f"truncated file: {len(data)} bytes, shorter than the header")
    (version,) = _VERSION.unpack_from(data, len(MAGIC))
    if version not in READABLE_VERSIONS:
        raise FormatError("version", f"unsupported format version {version} (this program reads versions "
                                     f"{READABLE_VERSIONS[0]} to {VERSION}"
                                     f"{'; upgrade equalinfo' if version > VERSION else ''})")
    return version


def parse_header(data, max_length=limits.MAX_INPUT_BYTES):
    """The Header of a file's first bytes (at least HEADER_SIZE of them), magic, version, CRC and field values
    checked. max_length: the largest original length accepted (None: any, for version 3 files read as a stream)."""
    check_start(data)
    return _parse_header(data, max_length)


def _parse_header(data, max_length=limits.MAX_INPUT_BYTES):
    """The Header of a file whose magic and version are right, with its CRC and field values checked."""
    if len(data) < HEADER_SIZE:
        raise FormatError("truncated", f"truncated file: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    fields = data[:_FIELDS.size]
    (stored,) = _CRC.unpack_from(data, _FIELDS.size)
    if zlib.crc32(fields) != stored:
        raise FormatError("corrupt", "corrupt file: header checksum mismatch")
    (_, version, method, precision, window_bits, kind, digest, original_length, coded_bits, original_crc,
     model_length) = _FIELDS.unpack(fields)
    if method >= len(METHODS):
        raise FormatError("corrupt", f"corrupt file: unknown method code {method}")
    try:
        kind = kind.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupt", "corrupt file: the model kind is not ASCII") from None
    header = Header(METHODS[method], precision, window_bits, kind, digest.hex() if any(digest) else "",
                    original_length, coded_bits, original_crc, model_length, version)
    _check_fields(header, max_length)
    return header


def _check_fields(header, max_length=limits.MAX_INPUT_BYTES):
    """Field values that contradict each other (a buggy writer: the CRC was right)."""
    problems = []
    if header.version == VERSION and header.method not in CODED_METHODS:
        problems.append(f"a {header.method} file has no segments (format version {UNSEGMENTED_VERSION})")
    elif header.method in ("gzip", "stored"):
        if header.precision or header.window_bits or header.model_kind or header.fingerprint or header.model_length:
            problems.append(f"a {header.method} file has no precision, window bits or model")
        if header.method == "stored" and header.version < 2:
            problems.append("method stored needs format version 2")
    else:
        if not header.model_kind or not header.fingerprint:
            problems.append(f"a {header.method} file must name its model")
        if not MIN_PRECISION <= header.precision <= MAX_PRECISION:
            problems.append(f"precision {header.precision} is outside {MIN_PRECISION}..{MAX_PRECISION}")
        if header.method == "equalinfo":
            if header.window_bits < max(header.precision, MIN_PRECISION):
                problems.append(f"window bits {header.window_bits} below the precision "
                                f"{max(header.precision, MIN_PRECISION)}")
            elif header.window_bits > limits.MAX_WINDOW_BITS:
                problems.append(f"window bits {header.window_bits:,} above the largest window, "
                                f"{limits.MAX_WINDOW_BITS}")
            elif header.coded_bits % header.window_bits:
                problems.append(f"{header.coded_bits} bits is not a whole number of {header.window_bits}-bit "
                                "windows")
        elif header.window_bits:
            problems.append(f"window bits {header.window_bits} given for method {header.method}")
        if header.method == "staticac" and (header.model_kind != "unigram" or not header.model_length):
            problems.append("a staticac file embeds its unigram model")
        if header.model_length > limits.MAX_MODEL_BYTES:
            problems.append(f"an embedded model of {header.model_length:,} bytes, above the "
                            f"{limits.size_words(limits.MAX_MODEL_BYTES)} allowed")
    if not problems:
        problems += _length_problems(header, max_length)
    if problems:
        raise FormatError("corrupt", f"corrupt file: {'; '.join(problems)}")


def _length_problems(header, max_length=limits.MAX_INPUT_BYTES):
    """The original length against the largest input and against what the payload can hold (limits.py); a version
    3 file's capacity is checked per segment, with its table (filetool/segments.py)."""
    n, bits = header.original_length, header.coded_bits
    if max_length is not None and n > max_length:
        return [f"original length {n:,} bytes is above the largest input held in memory, "
                f"{limits.size_words(max_length)}"
                + ("; decode it as a stream (equalinfo.decompress_stream)" if header.version == VERSION else "")]
    if header.version == VERSION:
        return []
    if header.method == "stored":
        fewest, most = bits / 8, bits / 8
    elif header.method == "gzip":
        fewest, most = 0, limits.gzip_capacity(-(-bits // 8))
    elif header.method == "equalinfo":
        fewest, most = limits.equalinfo_capacity(bits, header.window_bits, header.precision)
    else:
        fewest, most = 0, limits.ac_capacity(bits, header.precision)
    if not fewest <= n <= most:
        return [f"original length {n:,} bytes does not fit {bits:,} coded bits (they hold "
                + (f"{most:,.0f}" if fewest == most else f"{fewest:,} to {most:,}") + f" at most with "
                f"{header.method})"]
    return []


def unpack(data):
    """Container of a whole file's bytes, with magic, version, lengths and both CRCs checked (nothing decoded)."""
    data = bytes(data)
    header = parse_header(data)
    model_end = HEADER_SIZE + header.model_length
    table, table_length, payload_length = None, 0, -(-header.coded_bits // 8)
    if header.version == VERSION:
        table_length = segment_table_length(data[model_end:model_end + COUNTS_SIZE])
    expected = model_end + table_length + TRAILER_SIZE
    if header.version == VERSION and len(data) >= expected:  # the table is whole: its entries give the payload
        table = read_segment_table(header, data[model_end:model_end + table_length])
        payload_length = sum(table.payload_lengths())
    expected += payload_length
    if len(data) < expected:
        raise FormatError("truncated", f"truncated file: {len(data)} bytes, the header announces {expected}")
    if len(data) > expected:
        raise FormatError("corrupt", f"corrupt file: {len(data) - expected} unexpected bytes after the end")
    (stored,) = _CRC.unpack_from(data, expected - TRAILER_SIZE)
    if zlib.crc32(data[:expected - TRAILER_SIZE]) != stored:
        raise FormatError("corrupt", "corrupt file: checksum mismatch (the model or payload was damaged)")
    model_arrays = read_model(header, data[HEADER_SIZE:model_end]) if header.model_length else None
    payload = data[model_end + table_length:expected - TRAILER_SIZE]
    if table is not None:
        begin = 0
        for index, ((_, crc), length) in enumerate(zip(table.entries, table.payload_lengths())):
            check_segment_payload(index, payload[begin:begin + length], crc)
            begin += length
    return Container(header, model_arrays, payload, table)


def check_segment_payload(index, payload, crc):
    """FormatError('corrupt') naming segment `index` unless its payload bytes have the table's CRC-32."""
    if zlib.crc32(payload) != crc:
        raise FormatError("corrupt", f"corrupt file: segment {index}'s checksum mismatch (its payload was damaged)")


def segment_table_length(counts):
    """Bytes of a version 3 file's segment table from its first COUNTS_SIZE bytes (FormatError if they are short,
    damaged or impossible)."""
    if len(counts) < COUNTS_SIZE:
        raise FormatError("truncated", "truncated file: it ends inside the segment table")
    try:
        _, n_segments = read_counts(counts)
    except TableError as error:
        raise FormatError("corrupt", f"corrupt file: bad segment table: {error}") from None
    return table_size(n_segments)


def read_segment_table(header, data):
    """The SegmentTable of a version 3 file's table bytes, checked against its header (FormatError if not)."""
    try:
        return parse_table(data, header)
    except TableError as error:
        raise FormatError("corrupt", f"corrupt file: bad segment table: {error}") from None


def read_model(header, data):
    """The embedded model's arrays of its archive bytes, checked against the header's kind and fingerprint."""
    try:
        model_arrays = npz_to_arrays(data, lambda meta: check_meta(header.model_kind, meta))
    except ValueError as error:
        raise FormatError("corrupt", f"corrupt file: the embedded model is unreadable: {error}") from None
    if fingerprint(model_arrays) != header.fingerprint:
        raise FormatError("corrupt", "corrupt file: the embedded model does not match the header's "
                                     f"fingerprint {header.fingerprint}")
    return model_arrays


# --------------------------------------------------------------------------------------- checks around decoding

def resolve_model(container, model=None, model_name="the given model"):
    """The model to decode a container with: the embedded one, or `model` if its fingerprint is the header's.

    Refusing a different model matters because arithmetic decoding with the wrong probabilities does not fail:
    it returns plausible-length garbage. If both exist, the given one must match too (the user asked for it).
    """
    header = container.header
    if model is not None:
        given = fingerprint(model.arrays())
        if given != header.fingerprint:
            raise FormatError("wrong-model", f"wrong model: the file was compressed with {header.model_kind} model "
                                             f"{header.fingerprint}, but {model_name} is {model.kind} model {given}")
        return model
    if container.model_arrays is not None:
        try:
            check_model_arrays(header.model_kind, container.model_arrays)
            return model_from_arrays(header.model_kind, container.model_arrays)
        except ValueError as error:  # ModelError is a ValueError
            raise FormatError("corrupt", f"corrupt file: the embedded model cannot be built: {error}") from None
    raise FormatError("missing-model", f"missing model: the file was compressed with {header.model_kind} model "
                                       f"{header.fingerprint}, which it does not embed; pass --model PATH")


def check_output(header, data):
    """Raise FormatError('crc-mismatch') unless the decoded bytes have the original's length and CRC-32."""
    if len(data) != header.original_length:
        raise FormatError("crc-mismatch", f"output does not match: decoded {len(data)} bytes, the original had "
                                          f"{header.original_length}")
    crc = zlib.crc32(data)
    if crc != header.original_crc32:
        raise FormatError("crc-mismatch", f"output does not match CRC-32: decoded {crc:08x}, the original had "
                                          f"{header.original_crc32:08x}")
