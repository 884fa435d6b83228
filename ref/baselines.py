"""The paper's non-neural baselines as bitstreams: raw bytes and GZip.

GZip is what the paper calls GZip: Python's zlib at its default level (6), with zlib's 2-byte header and 4-byte
Adler-32 footer kept (docs/paper.md §1.6; the paper's "two bytes" footer is loose wording). StaticAC is plain AC with a
unigram model (ref.ac + ref.models.UnigramModel), so it needs nothing here.
"""
import zlib

import numpy as np


def bytes_to_bits(data):
    """uint8 bits [8 * len(data)] of a byte string, MSB first."""
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))


def bits_to_bytes(bits):
    """Byte string of a bitstream whose length is a multiple of 8."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 1 or len(bits) % 8:
        raise ValueError(f"{len(bits)} bits is not a whole number of bytes")
    return np.packbits(bits).tobytes()


def gzip_compress(data):
    """bits of zlib.compress(data) at the default level, header and footer kept."""
    return bytes_to_bits(zlib.compress(bytes(data)))


def gzip_decompress(bits):
    """The original bytes; a corrupt stream raises ValueError naming zlib's complaint."""
    try:
        return zlib.decompress(bits_to_bytes(bits))
    except zlib.error as error:
        raise ValueError(f"corrupt GZip stream: {error}") from None
