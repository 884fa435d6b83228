"""The explicit limits of the command line, and what a payload of a given size can possibly hold.

Every length, count and size read from a file or an option is checked against these before anything is allocated
or decoded, so a crafted header cannot make the program reserve terabytes or decode for hours (docs/limits.md).
The limits are generous for real use and small enough that a hostile input stays within a few hundred
MB of memory:
- MAX_INPUT_BYTES: the largest input (compress) or output (decompress) held in memory, 256 MiB;
- CODING_BYTES_PER_BYTE, CODING_BASE_BYTES: what coding holds, 256 bytes per input byte on top of 256 MiB (int64
  symbols, the Markov models compared, their contexts sorted). Measured peaks, `/usr/bin/time -f %M` on random and
  text inputs of 4 and 8 MB (docs/limits.md): compress ~217 bytes per byte, decompress ~134. compress and
  decompress refuse, before reading or decoding, an input whose estimate exceeds available_memory();
- MAX_MODEL_BYTES: the largest model, counted as the bytes of its uncompressed arrays, 256 MiB (an order-2 Markov
  model of 1 MB of random bytes is 136 MB; M1 '3m' is 13 MB in float32);
- MAX_WINDOW_BITS: the largest Equal-Info window, 4096 bits (the paper uses 16 to 128; a window's bits are padded
  to b, so a huge b only inflates the file, and the encoder's lookahead grows with b);
- MAX_MODEL_MEMBERS: the most arrays one model archive may hold (M1 at 24 layers has 247).
The numeric options' ranges (options.py) use these for what an option asks a command to do, so that a typo of
10^20 is refused instead of running until killed:
- MAX_SCALE: repro --scale, 1000 (the cpu preset's 2.5 hours become months);
- MAX_WORDS: analyze stability --words, 100,000 (the corpus's frequent-word pool is smaller still; the paper
  samples 1,000);
- MAX_SAMPLES: analyze uniformity --samples, 100,000 disjoint parts of a stream (the paper: 100);
- MAX_TEXTS: analyze seq2seq --train-texts/--val-texts, 10^6 texts (the default is 1,000);
- MAX_GENERATE_BYTES: generate --max-bytes and --max-steps, 1 MiB (one M2 forward pass per token: the default
  is 200 bytes).

Capacities: each coded symbol narrows the coder's interval by at most the widest quantized CDF step,
(2^p - 256) / 2^p (every other one of the 257 symbols keeps width >= 1), so n symbols need more than
n * -log2((2^p - 256) / 2^p + 2^-45) - 1 output bits (ref/arithmetic.py: the +2^-45 bounds the floor rounding at
range > 2^45). An Equal-Info window holds 1 to ref.equalinfo.max_symbols_per_window(b, p) symbols; zlib's deflate
expands at most 1032:1.
"""
import math
import os
import resource

from equalinfo.ref.arithmetic import STATE_BITS
from equalinfo.ref.equalinfo import max_symbols_per_window
from equalinfo.ref.symbols import N_SYMBOLS

MAX_INPUT_BYTES = 1 << 28
MAX_MODEL_BYTES = 1 << 28
MAX_WINDOW_BITS = 4096
MAX_MODEL_MEMBERS = 4096
MAX_FILE_BYTES = MAX_INPUT_BYTES + MAX_MODEL_BYTES + (1 << 16)  # the largest .eqi file: input, model, slack
DEFLATE_MAX_RATIO = 1032
CODING_BYTES_PER_BYTE = 256
CODING_BASE_BYTES = 1 << 28
MAX_SCALE = 1000.0
MAX_WORDS = 100_000
MAX_SAMPLES = 100_000
MAX_TEXTS = 10 ** 6
MAX_GENERATE_BYTES = 1 << 20


def min_bits_per_symbol(precision):
    """A lower bound on the output bits one coded symbol costs at this precision (module docstring)."""
    widest = ((1 << precision) - (N_SYMBOLS - 1)) / (1 << precision) + 2.0 ** -(STATE_BITS - 1)
    return -math.log2(widest)


def ac_capacity(coded_bits, precision):
    """The most symbols plain AC can code into coded_bits bits at this precision."""
    return int((coded_bits + 2) / min_bits_per_symbol(precision)) + 1


def equalinfo_capacity(coded_bits, window_bits, precision):
    """(fewest, most) symbols that coded_bits bits of b-bit Equal-Info windows can hold."""
    windows = coded_bits // window_bits
    return windows, windows * max_symbols_per_window(window_bits, precision)


def gzip_capacity(payload_bytes):
    """The most bytes a zlib stream of payload_bytes bytes can inflate to."""
    return DEFLATE_MAX_RATIO * payload_bytes + 64


def available_memory():
    """The bytes this process may use: the least of the machine's physical memory, the address-space and data
    limits (ulimit -v, -d) and the cgroup's memory.max; None when none of them is known."""
    found = []
    try:
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft = resource.getrlimit(which)[0]
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            text = handle.read().strip()
        if text.isdigit():
            found.append(int(text))
    except OSError:
        pass
    return min(found) if found else None


def coding_memory_problem(n_bytes):
    """None, or why coding n_bytes would not fit in memory (the estimate, the bytes available), in words."""
    need, available = CODING_BASE_BYTES + CODING_BYTES_PER_BYTE * n_bytes, available_memory()
    if available is None or need <= available:
        return None
    return (f"coding {n_bytes:,} bytes needs about {need / 2 ** 30:,.1f} GiB ({CODING_BYTES_PER_BYTE} bytes per "
            f"byte, docs/limits.md), more than the {available / 2 ** 30:,.1f} GiB this process may use")


def size_words(n_bytes):
    """'256 MiB' style size of a byte count that is a power of two multiple of KiB or MiB."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n_bytes >= 1 << shift and n_bytes % (1 << shift) == 0:
            return f"{n_bytes >> shift} {unit}"
    return f"{n_bytes:,} bytes"


def read_at_most(handle, n_bytes, chunk=1 << 20):
    """Up to n_bytes of a binary stream, read in chunks: read(n) reserves n bytes up front whatever the file's
    size, so a limit of 512 MiB would cost 512 MiB of address space for a 1 KB file."""
    parts, total = [], 0
    while total < n_bytes:
        part = handle.read(min(chunk, n_bytes - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)
