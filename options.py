"""The ranges of the command line's numeric options, in one table checked before any command starts.

argparse checks that a value is an integer; this table checks that it makes sense, so that `--batch-size 0`,
`--steps 0` or `--window-bits 4294967295` end in one line naming the option instead of a traceback, a silent
fallback to the preset, or a run that fills the machine's memory. Options a command does not have, and options
left at None (take the preset's value), are skipped. Checks that depend on other values (window bits against the
precision, a checkpoint's sizes) stay where those values are known.
"""
from equalinfo import limits

MAX_STEPS = 10 ** 9

# argparse dest -> (smallest, largest, why the bounds)
RANGES = {
    "batch_size": (1, 1 << 16, "rows per batch"),
    "steps": (1, MAX_STEPS, "training steps"),
    "window_bits": (9, limits.MAX_WINDOW_BITS, "bits per Equal-Info window"),
    "precision": (1, 16, "bits of the coder's CDFs"),
    "bits_per_token": (1, 16, "token width N, v = 2^N"),
    "vocab_size": (2, 1 << 20, "SentencePiece vocabulary"),
    "order": (1, 7, "Markov order"),
    "seed": (0, (1 << 63) - 1, "random seed"),
}


class OptionError(ValueError):
    """A command-line value outside its range."""


def check_options(args):
    """Raise OptionError naming the first option of `args` (an argparse Namespace) outside its range; an option
    that takes several values (e.g. `analyze --window-bits 16 32`) has each value checked."""
    for dest, (low, high, meaning) in RANGES.items():
        given = getattr(args, dest, None)
        for value in given if isinstance(given, (list, tuple)) else [given]:
            if value is not None and not low <= value <= high:
                raise OptionError(f"--{dest.replace('_', '-')} {value}: the {meaning} must be {low} to {high:,}")
