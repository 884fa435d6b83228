"""The paper's tokenizations of an example, each as `tokens(symbols) -> int64 tokens` (untrimmed), plus the inverse
where the method is lossless.

An example is a symbol array (bytes 0-255 and EOS 256, data/packing.py). Methods:
- `bytes`: one token per symbol (v = 257: the 256 bytes and EOS).
- `spm`: SentencePiece (unigram, byte fallback) over each document's text; EOS is the model's own </s> id. Bytes that
  are not valid UTF-8 (a character cut at an example boundary, or non-UTF-8 input) become byte-fallback tokens
  <0xXX>, so nothing is lost.
- `gzip`: zlib at the default level over the example as bytes, with EOS written as the escape 0xFF 0x01 and a literal
  0xFF byte as 0xFF 0x00 (lossless; UTF-8 text never contains 0xFF, so real text pays nothing); bits cut into N-bit
  tokens.
- `staticac`: plain AC with a unigram model fitted on the training split; `ac`: plain AC with M1;
  `equalinfo`: Equal-Info windows of b bits with M1. Bits cut into N-bit tokens (the last one zero-padded).
Coders come from the chosen backend (ref or fast), so a dataset records which one built it.
"""
import importlib.util
import re
import zlib

import numpy as np

from equalinfo.ref import baselines
from equalinfo.ref.symbols import EOS, N_SYMBOLS
from equalinfo.ref.tokens import bits_to_tokens, tokens_to_bits

ESCAPE = 0xFF
METHODS = ("bytes", "spm", "gzip", "staticac", "ac", "equalinfo")


def escape_symbols(symbols):
    """Bytes of a symbol array, EOS -> 0xFF 0x01, 0xFF -> 0xFF 0x00 (see the module docstring)."""
    out = bytearray()
    for symbol in np.asarray(symbols).tolist():
        if symbol == EOS:
            out += b"\xff\x01"
        elif symbol == ESCAPE:
            out += b"\xff\x00"
        else:
            out.append(symbol)
    return bytes(out)


def unescape_bytes(data):
    """Inverse of escape_symbols."""
    symbols, position = [], 0
    while position < len(data):
        if data[position] == ESCAPE:
            if position + 1 >= len(data) or data[position + 1] not in (0, 1):
                raise ValueError(f"bad escape at byte {position}")
            symbols.append(EOS if data[position + 1] == 1 else ESCAPE)
            position += 2
        else:
            symbols.append(data[position])
            position += 1
    return np.array(symbols, dtype=np.int64)


def proportional_cover(n_symbols, n_tokens, kept):
    """Bytes covered by the first `kept` tokens when a method spreads its bits over the whole example."""
    return float(n_symbols) if kept >= n_tokens else n_symbols * kept / n_tokens


class Bytes:
    name, vocab_size = "bytes", N_SYMBOLS

    def tokens(self, symbols):
        return np.asarray(symbols, dtype=np.int64)

    def tokens_and_cover(self, symbols, kept):
        """(tokens, bytes covered by the first `kept` tokens); here one byte per token."""
        return self.tokens(symbols), float(min(kept, len(symbols)))

    def decode(self, tokens, n_tokens):
        return np.asarray(tokens[:n_tokens], dtype=np.int64)

    def prepare(self, examples):
        """Nothing to code ahead: train/build.py calls every method's prepare; EqualInfo codes examples together."""


class BitMethod:
    """A method that makes a bitstream, cut into N-bit tokens.

    The bitstream does not depend on N, so methods that differ only in N can share a `cache` (a dict) and code each
    example once: v=256 and v=65k datasets of the same coder cost one compression.
    """

    def __init__(self, bits_per_token, cache=None):
        self.bits_per_token = int(bits_per_token)
        self.vocab_size = 1 << self.bits_per_token
        self.cache = cache

    def cached(self, key, symbols, compute):
        if self.cache is None:
            return compute()
        key = (key, np.asarray(symbols, dtype=np.int64).tobytes())
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def tokens(self, symbols):
        return bits_to_tokens(self.cached("bits", symbols, lambda: self.bits(symbols)), self.bits_per_token)

    def tokens_and_cover(self, symbols, kept):
        """(tokens, bytes covered by the first `kept` tokens), proportional: the bits mix the whole example."""
        tokens = self.tokens(symbols)
        return tokens, proportional_cover(len(symbols), len(tokens), kept)

    def bits(self, symbols):
        raise NotImplementedError

    def prepare(self, examples):
        """Nothing to code ahead: train/build.py calls every method's prepare; EqualInfo codes examples together."""


class Gzip(BitMethod):
    name = "gzip"

    def bits(self, symbols):
        return baselines.gzip_compress(escape_symbols(symbols))

    def decode(self, tokens, n_tokens):
        """Symbols of an untrimmed example (zlib's stream ends by itself, so the token padding is harmless)."""
        raw = baselines.bits_to_bytes(tokens_to_bits(tokens[:n_tokens], self.bits_per_token)[
            :8 * ((n_tokens * self.bits_per_token) // 8)])
        return unescape_bytes(zlib.decompressobj().decompress(raw))


class ArithmeticCoded(BitMethod):
    """staticac / ac: plain AC with a model (unigram or M1) over the whole example."""

    def __init__(self, name, model, bits_per_token, backend, precision=14, cache=None):
        super().__init__(bits_per_token, cache)
        self.name, self.model, self.backend, self.precision = name, model, backend, precision

    def bits(self, symbols):
        return self.backend.ac.compress(symbols, self.model, self.precision)

    def decode(self, tokens, n_tokens, n_symbols):
        bits = tokens_to_bits(tokens[:n_tokens], self.bits_per_token)
        return self.backend.ac.decompress(bits, self.model, n_symbols, self.precision)


class EqualInfo(BitMethod):
    """Equal-Info windows of b bits with M1. delimit=False: the paper's plain rule (greedy, the shortest cell
    padded with zeros), built for comparison only -- M2 can train on it, but its windows do not decode exactly.
    model_reset_every k != 1 (None: never): the paper's Table 9 ablation, M1's context reset only every k windows
    (ref/equalinfo.py); such windows decode only in order, after the ones before them."""
    name = "equalinfo"

    def __init__(self, model, window_bits, bits_per_token, backend, precision=14, cache=None, delimit=True,
                 model_reset_every=1):
        super().__init__(bits_per_token, cache)
        self.model, self.window_bits, self.backend, self.precision = model, window_bits, backend, precision
        self.delimit, self.model_reset_every = delimit, model_reset_every

    def windows(self, symbols):
        return self.cached("windows", symbols, lambda: self.backend.equalinfo.encode_windows(
            symbols, self.model, self.window_bits, self.precision, self.delimit, self.model_reset_every))

    def bits(self, symbols):
        windows = self.windows(symbols)
        return np.concatenate([w.bits for w in windows]) if windows else np.zeros(0, np.uint8)

    def prepare(self, examples):
        """Code many examples' windows together (fast backends batch M1 over every active window); later calls
        for these examples read the result from the cache."""
        if self.cache is None:
            self.cache = {}
        todo = [np.asarray(symbols, dtype=np.int64) for symbols in examples]
        todo = [symbols for symbols in todo if ("windows", symbols.tobytes()) not in self.cache]
        if todo:
            coded = self.backend.equalinfo.encode_windows_batch(todo, self.model, self.window_bits, self.precision,
                                                                self.delimit, self.model_reset_every)
            for symbols, windows in zip(todo, coded):
                self.cache[("windows", symbols.tobytes())] = windows

    def tokens_and_cover(self, symbols, kept):
        """Exact: the kept tokens hold whole windows (plus a part of one), whose symbol counts are known."""
        windows = self.windows(symbols)
        tokens = bits_to_tokens(self.bits(symbols), self.bits_per_token)
        whole = (kept * self.bits_per_token) // self.window_bits  # windows entirely inside the kept tokens
        return tokens, float(sum(w.length for w in windows[:whole]))

    def decode(self, tokens, n_tokens, n_symbols):
        if not self.delimit:
            raise ValueError("zero-padded Equal-Info windows (delimit=False, the paper's plain rule) do not decode "
                             "exactly: a window's end is ambiguous where zero bits could be more symbols")
        bits = tokens_to_bits(tokens[:n_tokens], self.bits_per_token)
        bits = bits[:len(bits) - len(bits) % self.window_bits]
        return self.backend.equalinfo.decompress(bits, self.model, self.window_bits, self.precision, n_symbols,
                                                 self.model_reset_every)


class SentencePiece:
    """SentencePiece tokens of each document's text, EOS as </s>; invalid UTF-8 as byte-fallback tokens."""

    name = "spm"

    def __init__(self, processor):
        self.processor = processor
        self.vocab_size = processor.get_piece_size()
        self.eos_id = processor.eos_id()
        self.byte_ids = np.array([processor.piece_to_id(f"<0x{b:02X}>") for b in range(256)])
        if processor.unk_id() in self.byte_ids:
            raise ValueError("the SentencePiece model was trained without byte_fallback")

    def prepare(self, examples):
        """Nothing to code ahead: train/build.py calls every method's prepare; EqualInfo codes examples together."""

    def _text_tokens(self, data):
        """Tokens of a byte string: valid UTF-8 runs through SentencePiece, other bytes as byte tokens."""
        out, position = [], 0
        while position < len(data):
            try:
                text = data[position:].decode("utf-8")
                out.extend(self.processor.encode(text))
                break
            except UnicodeDecodeError as error:
                good = data[position:position + error.start].decode("utf-8")
                if good:
                    out.extend(self.processor.encode(good))
                bad_end = position + error.end
                out.extend(int(self.byte_ids[b]) for b in data[position + error.start:bad_end])
                position = bad_end
        return out

    def tokens(self, symbols):
        symbols = np.asarray(symbols)
        out, start = [], 0
        for end in list(np.flatnonzero(symbols == EOS)) + [len(symbols)]:
            out.extend(self._text_tokens(symbols[start:end].astype(np.uint8).tobytes()))
            if end < len(symbols):
                out.append(self.eos_id)
            start = end + 1
        return np.array(out, dtype=np.int64)

    def tokens_and_cover(self, symbols, kept):
        """Exact: the bytes the first `kept` tokens decode to."""
        tokens = self.tokens(symbols)
        return tokens, float(len(symbols) if kept >= len(tokens) else len(self.decode(tokens, kept)))

    def decode(self, tokens, n_tokens):
        pieces, symbols = tokens[:n_tokens].tolist(), []
        run = []

        def flush():
            if run:
                symbols.extend(self.processor.decode(run).encode("utf-8"))
                run.clear()

        byte_of = {int(i): b for b, i in enumerate(self.byte_ids)}
        for token in pieces:
            if token == self.eos_id:
                flush()
                symbols.append(EOS)
            elif token in byte_of:
                flush()
                symbols.append(byte_of[token])
            else:
                run.append(token)
        flush()
        return np.array(symbols, dtype=np.int64)


def sentencepiece_available():
    """True if the optional sentencepiece package (extra `spm`) is installed."""
    return importlib.util.find_spec("sentencepiece") is not None


def train_sentencepiece(documents, vocab_size=32_000, seed=0):
    """A SentencePiece unigram model (byte fallback) trained on documents (bytes); returns (processor, bytes).

    The vocabulary adapts to small corpora: SentencePiece refuses a vocabulary larger than the text supports (we
    retry with 3/4 of the size) or smaller than the corpus's distinct characters (we grow it to hold them); the
    processor's get_piece_size() is the size used.
    """
    try:
        import sentencepiece
    except ImportError:
        raise ValueError("the spm method needs the sentencepiece package: pip install -e '.[spm]'") from None
    import io

    texts = [d.decode("utf-8", errors="replace") for d in documents if d]
    size = int(vocab_size)
    while True:
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, vocab_size=size, model_type="unigram",
                byte_fallback=True, character_coverage=1.0, max_sentence_length=1 << 20,
                split_by_whitespace=True, num_threads=1, minloglevel=2, normalization_rule_name="identity",
                remove_extra_whitespaces=False, add_dummy_prefix=False, allow_whitespace_only_pieces=True,
                pad_id=-1, bos_id=-1, eos_id=1, unk_id=0, hard_vocab_limit=True)
            break
        except RuntimeError as error:
            required = re.search(r"required_chars.*?(\d+) vs (\d+)", str(error))
            if required:  # more distinct characters than pieces: grow the vocabulary to hold them
                size = int(required.group(2)) + 64
            elif "Vocabulary size" in str(error) and size > 300:
                size = max(300, size * 3 // 4)
            else:
                raise
    blob = model.getvalue()
    return sentencepiece.SentencePieceProcessor(model_proto=blob), blob
