"""Every numeric option of the command line, described once: its type, its range, finite or not, its unit.

argparse reads each numeric option through its Number below (`type=options.number("words")`), so a value outside
its range, NaN, an infinity or a word that is not a number ends in one line naming the option (cli.py's parser
turns it into `equalinfo: error: ...`, status 2) before any command starts: `--batch-size 0`, `--lr inf`,
`--words 99999999999999999999` and `--window-bits 4294967295` are refused, never silently replaced by a default
nor run until killed. No command may use a bare `type=int` or `type=float`: tests/test_hostile_options.py walks
every subcommand's parser, refuses one, and tries hostile values on every option found here, so a new option is
covered without a new test. Options left at None (take the preset's value) are not checked. Checks that depend on
other values (window bits against the precision, a checkpoint's sizes) stay where those values are known.

The upper bounds are the documented limits (docs/limits.md): sizes that would run for days or fill the memory
(10^20 words to sample, bytes to generate) are refused here rather than capped, so that the output always says
what was asked for.
"""
import argparse
import math
from dataclasses import dataclass

from equalinfo import limits
from equalinfo.ref.exact_rules import RULE_MODULES

MAX_STEPS = 10 ** 9


@dataclass(frozen=True)
class Number:
    """One option's values: `kind` (int or float) from `low` to `high` (`low_open`: low itself excluded), always
    finite; `meaning` says what it counts, in the error line. Called by argparse on the option's text."""
    kind: type
    low: float
    high: float
    meaning: str
    low_open: bool = False

    @property
    def __name__(self):  # argparse names a type by its __name__ in some messages
        return self.kind.__name__

    def parse(self, text):
        """The value of `text`, or ValueError saying the range and the value."""
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            raise ValueError(f"not {'an integer' if self.kind is int else 'a number'}") from None
        above = value > self.low if self.low_open else value >= self.low
        if not (math.isfinite(value) and above and value <= self.high):
            low, high = (f"{bound:,g}" if self.kind is float else f"{bound:,}" for bound in (self.low, self.high))
            bounds = f"above {low} and at most {high}" if self.low_open else f"{low} to {high}"
            raise ValueError(f"must be {bounds} ({self.meaning})")
        return value

    def __call__(self, text):
        """argparse's `type`: cli.Parser calls parse itself to name the option in the error line."""
        try:
            return self.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text}: {error}") from None


@dataclass(frozen=True)
class NumberOrWord(Number):
    """A Number, or one word standing for a value the command works out itself (`--workers auto`)."""
    word: str = "auto"

    def parse(self, text):
        if text == self.word:
            return text
        try:
            return super().parse(text)
        except ValueError as error:
            raise ValueError(f"{error}, or {self.word}") from None


def Int(low, high, meaning):
    """Whole numbers from low to high, both included."""
    return Number(int, low, high, meaning)


def Float(low, high, meaning, low_open=True):
    """Finite reals above low (or from low, with low_open=False) up to high."""
    return Number(float, low, high, meaning, low_open)


# argparse dest -> its values. One table for every command: a dest means the same thing wherever it appears.
OPTIONS = {
    # shared by several commands
    "seed": Int(0, (1 << 63) - 1, "random seed"),
    "threads": Int(1, 4096, "threads per pool"),
    "steps": Int(1, MAX_STEPS, "training steps"),
    "batch_size": Int(1, 1 << 16, "rows per batch"),
    "window_bits": Int(9, limits.MAX_WINDOW_BITS, "bits per Equal-Info window"),
    "bits_per_token": Int(1, 16, "token width N, v = 2^N"),
    # the file tool
    "precision": Int(1, 16, "bits of the coder's CDFs"),
    "order": Int(1, 7, "Markov order"),
    "m1_rule": Int(1, max(RULE_MODULES), "M1's exact rule"),
    "m1_context": Int(1, 1 << 20, "symbols between M1's restarts"),
    "file_workers": NumberOrWord(int, 1, 64, "processes coding a file's segments"),  # --workers of compress
    # the pipeline
    "scale": Float(0, limits.MAX_SCALE, "factor on the preset's data and steps"),
    "vocab_size": Int(2, 1 << 20, "SentencePiece vocabulary"),
    "keep_every": Int(0, MAX_STEPS, "steps between kept checkpoints, 0: none"),
    "workers": Int(1, 4096, "local worker processes"),
    # the analyses and generate
    "words": Int(2, limits.MAX_WORDS, "words to sample"),
    "contexts": Int(1, 1000, "contexts of the Table 7 view"),
    "max_rows": Int(1, 1 << 30, "validation rows"),
    "samples": Int(1, limits.MAX_SAMPLES, "disjoint samples per stream"),
    "compare_bytes": Int(0, limits.MAX_INPUT_BYTES, "bytes of text"),
    "text_bytes": Int(1, 1 << 16, "bytes per text"),
    "train_texts": Int(1, limits.MAX_TEXTS, "training texts"),
    "val_texts": Int(1, limits.MAX_TEXTS, "validation texts"),
    "lr": Float(0, 10, "learning rate"),
    "max_bytes": Int(1, limits.MAX_GENERATE_BYTES, "bytes to generate"),
    "max_steps": Int(1, limits.MAX_GENERATE_BYTES, "M2 steps"),
    "temperature": Float(0, 100, "sampling temperature"),
    # conformance check --implementation
    "timeout": Float(0, 86400, "seconds one family's call may take"),
}


def number(dest):
    """The argparse `type` of the option stored at `dest` (KeyError for an option the table does not describe)."""
    return OPTIONS[dest]
