"""Generating text with an M2: sample its tokens, turn them back into text, and time every part.

The paper argues that an M2 over Equal-Info tokens needs fewer decoder steps per byte than one over bytes or
SentencePiece (bytes per step = the compression ratio) but measures no latency (docs/paper.md §3.6). Here each step is
timed: M2's forward pass and sampling (M2 ms/step), turning the new tokens into text (for Equal-Info this runs M1
to decode every completed window: M1 ms/step), and the end-to-end bytes per second.

Turning tokens into text:
- Bytes: one token is one symbol; EOS (256) ends a document.
- SentencePiece: each piece's bytes (byte-fallback pieces are raw bytes).
- Equal-Info windows: every b / N tokens complete one window (a token of N bits; the bits are buffered when N does
  not divide b), and a window decodes alone from its b bits and M1 (ref/equalinfo.py). M2 can sample any bits, not
  only bits the encoder would write, so:
  * every b-bit pattern decodes to *some* text: the decoder stops where the window's cell straddles two symbols,
    which always happens within the symbols a window can hold (max_symbols_per_window), so decoding never fails;
  * a window may decode to nothing (its cell straddles the first symbol's boundaries): it adds no text, costs one
    window of steps, and is counted as "empty";
  * a window may decode to EOS (256): the document ends there; it is shown as "\\n[EOS]\\n" and generation goes on
    (the symbols after EOS in the same window are kept: they are what the bits say);
  * a window whose text the encoder would have cut differently (greedy rule: it would have added more symbols, or
    chosen other bits) is still decoded as written; `canonical_windows` counts, after the timed run, how many
    windows re-encode to exactly their own bits when followed by the next window's text.
- The prompt is encoded by the same method (for Equal-Info: whole windows, the last one ending where the prompt
  ends), so generated windows start at a window boundary, as in training rows.

M2 has no key/value cache here: each step runs its forward pass on the whole context (up to the dataset's row
length; for Equal-Info the oldest tokens are dropped whole windows at a time so positions stay window-aligned).
The same holds for every M2 compared, so ms/step compare like with like; a cached decoder would lower M2's cost per
step for all of them alike.
"""
import codecs
import math
import time
from dataclasses import dataclass, field

import numpy as np

from equalinfo.ref.symbols import EOS, bytes_to_symbols
from equalinfo.ref.tokens import bits_to_tokens, tokens_to_bits

EOS_TEXT = b"\n[EOS]\n"


class GenerateError(ValueError):
    """Models and datasets that do not belong together, or bad generation settings."""


@dataclass
class Stats:
    """What one generation run did and how long each part took (seconds)."""
    steps: int = 0
    bytes: int = 0
    m2_seconds: float = 0.0
    decode_seconds: float = 0.0
    wall_seconds: float = 0.0
    windows: int = 0
    empty_windows: int = 0
    eos: int = 0
    window_texts: list = field(default_factory=list)

    def report(self):
        steps = max(self.steps, 1)
        out = {"steps": self.steps, "bytes": self.bytes, "bytes_per_step": self.bytes / steps,
               "m2_ms_per_step": 1e3 * self.m2_seconds / steps, "decode_ms_per_step": 1e3 * self.decode_seconds / steps,
               "bytes_per_second": self.bytes / self.wall_seconds if self.wall_seconds else 0.0,
               "wall_seconds": self.wall_seconds, "eos": self.eos}
        if self.windows:
            out.update(windows=self.windows, empty_windows=self.empty_windows)
        return out


class Sampler:
    """Samples M2's next token from its forward pass over the context [BOS, tokens...] at a temperature."""

    def __init__(self, transformer, params, cfg, context, temperature, rng, align=1):
        if temperature < 0 or not math.isfinite(temperature):
            raise GenerateError(f"--temperature must be >= 0, got {temperature}")
        self.transformer, self.params, self.cfg = transformer, params, cfg
        self.context, self.temperature, self.rng, self.align = int(context), float(temperature), rng, int(align)
        self.bos = cfg.vocab_out  # M2's input vocabulary is its tokens plus BOS (train/m2.py)

    def window(self, tokens):
        """The context M2 sees: the last tokens that fit, dropped `align` tokens at a time."""
        excess = max(0, len(tokens) + 1 - self.context)
        drop = -(-excess // self.align) * self.align
        return tokens[drop:]

    def next(self, tokens):
        inputs = np.array([[self.bos] + self.window(tokens)], dtype=np.int64)
        logits = self.transformer.forward(self.params, self.cfg, inputs)[0, -1]
        logits = np.asarray(logits.get() if hasattr(logits, "get") else logits, dtype=np.float64)  # [V]
        if self.temperature == 0:
            return int(np.argmax(logits))
        scaled = (logits - logits.max()) / self.temperature
        probs = np.exp(scaled)
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))


class BytesText:
    """Bytes tokens -> text: one symbol per token."""
    name = "Bytes"

    def encode(self, data):
        return bytes_to_symbols(data).tolist()

    def push(self, token, stats):
        if token == EOS:
            stats.eos += 1
            return [EOS_TEXT]
        return [bytes([token])] if 0 <= token < 256 else []


class SentencePieceText:
    """SentencePiece tokens -> text, one piece at a time (train/methods.SentencePiece's decoding)."""
    name = "SentencePiece"

    def __init__(self, coder):
        self.coder = coder

    def encode(self, data):
        return self.coder.tokens(bytes_to_symbols(data)).tolist()

    def push(self, token, stats):
        symbols = self.coder.decode(np.array([token]), 1)
        out = []
        for symbol in symbols.tolist():
            if symbol == EOS:
                stats.eos += 1
                out.append(EOS_TEXT)
            else:
                out.append(bytes([symbol]))
        return [b"".join(out)]


class EqualInfoText:
    """Equal-Info tokens -> text: buffer N bits per token, decode every completed b-bit window with M1."""

    def __init__(self, model, window_bits, bits_per_token, backend, precision=14):
        self.model, self.window_bits, self.bits_per_token = model, int(window_bits), int(bits_per_token)
        self.backend, self.precision = backend, precision
        self.name = f"EqualInfoAC[b={window_bits},v={1 << bits_per_token}]"
        self.pending = np.zeros(0, dtype=np.uint8)

    @property
    def tokens_per_window(self):
        """Tokens dropped together to keep M2's positions window-aligned (the lcm of b and N over N)."""
        return math.lcm(self.window_bits, self.bits_per_token) // self.bits_per_token

    def encode(self, data):
        """Tokens of the prompt's windows; the bits of a last partial token are zero-padded, as datasets do."""
        if not data:
            return []
        windows = self.backend.equalinfo.encode_windows(bytes_to_symbols(data), self.model, self.window_bits,
                                                        self.precision)
        bits = np.concatenate([w.bits for w in windows])
        bits = bits[:len(bits) - len(bits) % self.bits_per_token]  # whole tokens only
        tail = len(bits) % self.window_bits  # bits of a window the prompt's tokens leave open (N not dividing b)
        self.pending = bits[len(bits) - tail:] if tail else np.zeros(0, dtype=np.uint8)
        return bits_to_tokens(bits, self.bits_per_token).tolist()

    def decode(self, bits):
        """Symbols of one window's bits (self-delimited, as every window M2 samples must be)."""
        return self.backend.equalinfo.decode_windows(bits[None, :], self.model, self.precision)[0].tolist()

    def push(self, token, stats):
        self.pending = np.concatenate([self.pending, tokens_to_bits(np.array([token]), self.bits_per_token)])
        out = []
        while len(self.pending) >= self.window_bits:
            bits, self.pending = self.pending[:self.window_bits], self.pending[self.window_bits:]
            symbols = self.decode(bits)
            stats.windows += 1
            stats.empty_windows += not symbols
            stats.window_texts.append((bits, symbols))
            text = []
            for symbol in symbols:
                if symbol == EOS:
                    stats.eos += 1
                    text.append(EOS_TEXT)
                else:
                    text.append(bytes([symbol]))
            out.append(b"".join(text))
        return out


def canonical_windows(text_maker, window_texts):
    """How many generated windows the encoder would have written: the window's symbols followed by the next
    window's re-encode to the same first window (same length, same bits). The last window has no successor and
    is not counted. Returns (canonical, checked)."""
    good = checked = 0
    for (bits, symbols), (_, following) in zip(window_texts, window_texts[1:]):
        if not symbols:
            continue
        checked += 1
        both = np.array(symbols + following, dtype=np.int64)
        first = text_maker.backend.equalinfo.encode_windows(both, text_maker.model, text_maker.window_bits,
                                                            text_maker.precision)[0]
        good += first.length == len(symbols) and np.array_equal(first.bits, bits)
    return good, checked


def generate(sampler, text_maker, prompt=b"", max_bytes=256, max_steps=None, on_text=None):
    """Sample from M2 until max_bytes of text (or max_steps); returns (text bytes, Stats).

    on_text(bytes) receives each piece of text as soon as it is decoded (for streaming). max_steps defaults to
    64 steps per byte asked for, so an M2 whose windows keep decoding to nothing still stops."""
    if max_bytes < 1:
        raise GenerateError(f"--max-bytes must be positive, got {max_bytes}")
    max_steps = 64 * max_bytes if max_steps is None else max_steps
    stats = Stats()
    tokens = list(text_maker.encode(prompt))
    pieces = []
    started = time.perf_counter()
    while stats.bytes < max_bytes and stats.steps < max_steps:
        t0 = time.perf_counter()
        token = sampler.next(tokens)
        t1 = time.perf_counter()
        new = text_maker.push(token, stats)
        t2 = time.perf_counter()
        stats.m2_seconds += t1 - t0
        stats.decode_seconds += t2 - t1
        stats.steps += 1
        tokens.append(token)
        for piece in new:
            if piece:
                pieces.append(piece)
                stats.bytes += len(piece)
                if on_text is not None:
                    on_text(piece)
    stats.wall_seconds = time.perf_counter() - started
    return b"".join(pieces), stats


class Utf8Stream:
    """Writes bytes to a text stream as they come, holding back an incomplete UTF-8 character."""

    def __init__(self, stream):
        self.stream, self.decoder = stream, codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, data):
        self.stream.write(self.decoder.decode(data))
        self.stream.flush()

    def close(self):
        self.stream.write(self.decoder.decode(b"", final=True))
        self.stream.flush()
