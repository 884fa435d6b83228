"""Peak memory of streamed compression and decompression (filetool/streaming.py) per batch size, beside
whole-buffer coding of the same input: the numbers behind the bound in streaming.py's docstring.

Usage (from the repository root):
    python bench/stream_memory.py [--mib 8]

The input is English made on demand (a repeating sentence, never held whole by the stream), coded by fast.cpu's
plain AC with a unigram model (a model whose own memory is negligible, so the coder's is what shows); the output
goes to a sink that keeps only its length. Peaks are Python's traced allocations (tracemalloc: NumPy's arrays
included), in MB, less the compressed file the bench itself keeps in memory.
"""
import argparse
import io
import tracemalloc

import _checkout  # noqa: F401 (equalinfo from this checkout, installed or not)

from equalinfo.filetool import codec, streaming  # noqa: E402
from equalinfo.ref.models import UnigramModel  # noqa: E402
from equalinfo.ref.symbols import bytes_to_symbols  # noqa: E402
from equalinfo.train import backends  # noqa: E402

SENTENCE = b"The quick brown fox jumps over the lazy dog. "


class Generated:
    """n_bytes of repeated SENTENCE, made as they are read."""

    def __init__(self, n_bytes):
        self.left = n_bytes

    def read(self, n_bytes=-1):
        n_bytes = self.left if n_bytes < 0 else min(n_bytes, self.left)
        self.left -= n_bytes
        return (SENTENCE * (n_bytes // len(SENTENCE) + 1))[:n_bytes]


class Sink:
    def __init__(self):
        self.length = 0

    def write(self, data):
        self.length += len(data)


def peak(run):
    tracemalloc.start()
    try:
        kept = run()
        return (tracemalloc.get_traced_memory()[1] - kept) / 1e6
    finally:
        tracemalloc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=8)
    args = parser.parse_args()
    n_bytes = args.mib << 20
    cpu = backends.load("cpu")
    model = UnigramModel.fit(bytes_to_symbols(SENTENCE * 10))
    streaming.compress_stream(Generated(1 << 16), Sink(), model, "ac", backend=cpu)  # compile first
    print(f"{args.mib} MiB input; peak traced MB (compress, decompress)")
    for segment_bytes, batch in ((16 << 10, 2), (16 << 10, 16), (16 << 10, streaming.DEFAULT_BATCH_SEGMENTS)):
        out = io.BytesIO()

        def compress():
            streaming.compress_stream(Generated(n_bytes), out, model, "ac", backend=cpu,
                                      segment_bytes=segment_bytes, batch_segments=batch)
            return len(out.getvalue())

        written = peak(compress)
        blob = out.getvalue()

        def decompress():
            streaming.decompress_stream(io.BytesIO(blob), Sink(), backend=cpu, batch_segments=batch)
            return 0  # the file was read into memory before tracing began

        read = peak(decompress)
        batch_mib = segment_bytes * batch / 2 ** 20
        print(f"stream, batches of {batch:>3} x {segment_bytes >> 10} KiB = {batch_mib:5.2f} MiB: "
              f"{written:7.1f} {read:7.1f}")
    data = Generated(n_bytes).read()
    whole = peak(lambda: len(codec.compress_bytes(data, "ac", model, embed=False, backend=cpu)[0]))
    blob = codec.compress_bytes(data, "ac", model, embed=False, backend=cpu)[0]
    back = peak(lambda: 0 * len(codec.decompress_bytes(blob, model, backend=cpu)[0]))
    print(f"whole buffer (compress: the input not counted; decompress: its output counted): {whole:7.1f} {back:7.1f}")


if __name__ == "__main__":
    main()
