"""What a preset (train/presets/*.json) may contain: one strict declarative schema, checked before any work starts.

Every key a preset may hold is listed below with its type and range; anything else is refused with one line that
names the key's path (`m1.train.checkpoint_evry`) and, for a misspelt key, the nearest known one ("did you mean
'checkpoint_every'?"). Nulls are refused except where null has a meaning (an optimizer's optional clipping).
A section marked Optional may be left out (the code then uses the default it documents); every other key is
required. An optimizer's keys depend on its `name`, a dataset entry's on its `method` (Tagged).

Before the schema, read_preset_file refuses what would break the JSON reader itself (a file larger than
MAX_PRESET_BYTES, text that is not UTF-8, arrays nested deeper than MAX_DEPTH: a few thousand levels end Python's
reader in a RecursionError); after it, validate refuses a preset whose training steps cannot fit in this machine's
memory (train/memory.py), naming the key that sets the size.
"""
import difflib
import json
from dataclasses import dataclass, field

from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.ref.transformer import SIZES
from equalinfo import limits
from equalinfo.train import methods
from equalinfo.options import MAX_STEPS
from equalinfo.train import memory


class PresetError(ValueError):
    """An unknown or invalid preset."""


def _where(path):
    return path or "the preset"


@dataclass(frozen=True)
class Int:
    low: int
    high: int

    def check(self, value, path):
        if not isinstance(value, int) or isinstance(value, bool):
            raise PresetError(f"{_where(path)}: expected an integer, got {_show(value)}")
        if not self.low <= value <= self.high:
            raise PresetError(f"{_where(path)}: {value} is outside {self.low:,} to {self.high:,}")


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    low_open: bool = False  # True: the value must be above `low`

    def check(self, value, path):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise PresetError(f"{_where(path)}: expected a number, got {_show(value)}")
        if not (self.low < value if self.low_open else self.low <= value) or not value <= self.high:
            raise PresetError(f"{_where(path)}: {value} is outside {'(' if self.low_open else '['}{self.low}, "
                              f"{self.high}]")


@dataclass(frozen=True)
class Bool:
    def check(self, value, path):
        if not isinstance(value, bool):
            raise PresetError(f"{_where(path)}: expected true or false, got {_show(value)}")


@dataclass(frozen=True)
class Str:
    def check(self, value, path):
        if not isinstance(value, str):
            raise PresetError(f"{_where(path)}: expected a string, got {_show(value)}")


@dataclass(frozen=True)
class Choice:
    options: tuple

    def check(self, value, path):
        if value not in self.options or not isinstance(value, str):
            raise PresetError(f"{_where(path)}: {_show(value)} is not one of {', '.join(self.options)}"
                              + _hint(value, self.options))


@dataclass(frozen=True)
class List:
    item: object
    min_length: int = 1

    def check(self, value, path):
        if not isinstance(value, list):
            raise PresetError(f"{_where(path)}: expected a list, got {_show(value)}")
        if len(value) < self.min_length:
            raise PresetError(f"{_where(path)}: needs at least {self.min_length} entries")
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]")


@dataclass(frozen=True)
class Either:
    """One of several specs (e.g. an int or a list of ints); the first one's error is reported."""
    specs: tuple

    def check(self, value, path):
        errors = []
        for spec in self.specs:
            try:
                return spec.check(value, path)
            except PresetError as error:
                errors.append(error)
        raise errors[0] if not isinstance(value, list) or len(errors) < 2 else errors[1]


@dataclass(frozen=True)
class Nullable:
    spec: object

    def check(self, value, path):
        if value is not None:
            self.spec.check(value, path)


@dataclass(frozen=True)
class Optional:
    """A key that may be left out (not null: Nullable says that)."""
    spec: object

    def check(self, value, path):
        self.spec.check(value, path)


@dataclass(frozen=True)
class Dict:
    fields: dict = field(default_factory=dict)

    def check(self, value, path):
        if not isinstance(value, dict):
            raise PresetError(f"{_where(path)}: expected an object {{...}}, got {_show(value)}")
        for key in value:
            if key not in self.fields:
                raise PresetError(f"{_join(path, key)}: unknown key" + _hint(key, self.fields))
        for key, spec in self.fields.items():
            if key not in value:
                if not isinstance(spec, Optional):
                    raise PresetError(f"{_join(path, key)}: missing")
                continue
            if value[key] is None and not isinstance(getattr(spec, "spec", spec), Nullable):
                raise PresetError(f"{_join(path, key)}: null is not allowed here")
            spec.check(value[key], _join(path, key))


@dataclass(frozen=True)
class Tagged:
    """An object whose keys depend on the value of its `tag` key."""
    tag: str
    variants: dict

    def check(self, value, path):
        if not isinstance(value, dict):
            raise PresetError(f"{_where(path)}: expected an object {{...}}, got {_show(value)}")
        if self.tag not in value:
            raise PresetError(f"{_join(path, self.tag)}: missing")
        Choice(tuple(self.variants)).check(value[self.tag], _join(path, self.tag))
        Dict({self.tag: Str(), **self.variants[value[self.tag]]}).check(value, path)


def _join(path, key):
    return f"{path}.{key}" if path else key


def _show(value):
    return "null" if value is None else repr(value)


def _hint(word, known):
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


BIG = 1 << 30
MAX_SEEDS = 1000  # m2.seeds: M2 trained this many times per (dataset, size), seeds preset seed + 0, 1, ...
COUNT = Int(0, BIG)
POSITIVE = Int(1, BIG)
CLIP = Optional(Nullable(Float(0, 1e9, low_open=True)))
OPTIMIZER = Tagged("name", {
    "adamw": {"peak_lr": Float(0, 10), "warmup_steps": COUNT, "total_steps": Int(1, MAX_STEPS),
              "final_lr_fraction": Optional(Float(0, 1)), "b1": Optional(Float(0, 0.999999)),
              "b2": Optional(Float(0, 0.999999)), "eps": Optional(Float(0, 1, low_open=True)),
              "weight_decay": Optional(Float(0, 10)), "clip_norm": CLIP},
    "adafactor": {"base_lr": Optional(Float(0, 10)), "warmup_steps": Optional(COUNT),
                  "decay_rate": Optional(Float(0, 10, low_open=True)), "step_offset": Optional(COUNT),
                  "clipping_threshold": CLIP, "multiply_by_parameter_scale": Optional(Bool()),
                  "factored": Optional(Bool()), "min_dim_size_to_factor": Optional(POSITIVE),
                  "epsilon1": Optional(Float(0, 1, low_open=True)), "epsilon2": Optional(Float(0, 1, low_open=True)),
                  "clip_norm": CLIP},
})
TRAIN = Dict({"steps": Int(1, MAX_STEPS), "eval_every": Optional(COUNT), "checkpoint_every": Optional(COUNT),
              "optimizer": OPTIMIZER})
SIZE = Choice(tuple(SIZES))
DTYPE = Optional(Choice(("float32", "float64")))
TOKEN_BITS = Optional(Either((Int(1, 16), List(Int(1, 16)))))
DATASET = Tagged("method", {
    "bytes": {}, "spm": {"vocab_size": Optional(Int(2, 1 << 20))},
    "gzip": {"bits_per_token": TOKEN_BITS}, "staticac": {"bits_per_token": TOKEN_BITS},
    "ac": {"bits_per_token": TOKEN_BITS},
    "equalinfo": {"window_bits": List(Int(9, limits.MAX_WINDOW_BITS)), "bits_per_token": TOKEN_BITS,
                  "delimit": Optional(Bool()),
                  "m1_reset_every": Optional(Either((Int(1, 1 << 20), Choice(("never",))))),
                  "shuffle_windows": Optional(Bool()),  # the shuffled-window control (train/shuffled_windows.py)
                  "seq_len": Optional(Int(1, 1 << 20))},  # this entry's rows' length (Table 6: byte-matched rows)
})
assert set(DATASET.variants) == set(methods.METHODS)

PRESET = Dict({
    "description": Optional(Str()),
    "seed": Int(0, (1 << 63) - 1),
    "corpus": Optional(Str()),
    "scale": Optional(Float(0, 1e6, low_open=True)),  # written by repro --scale: the factor applied
    "packing": Dict({"group_size": POSITIVE, "example_length": Int(1, 1 << 24), "validation_every": Int(2, BIG)}),
    "m1": Dict({"size": SIZE, "dtype": DTYPE, "seq_len": Int(2, 1 << 16), "batch_size": Int(1, 1 << 16),
                "eval_sequences": Optional(POSITIVE), "train": TRAIN}),
    "coding": Dict({"precision": Optional(Int(9, 16)), "exact_rule": Optional(Int(1, max(RULE_MODULES)))}),
    "datasets": Dict({"train_examples": POSITIVE, "val_examples": POSITIVE, "seq_len": Int(1, 1 << 20),
                      "methods": List(DATASET)}),
    "m2": Dict({"sizes": List(SIZE), "dtype": DTYPE, "batch_size": Int(1, 1 << 16), "eval_rows": Optional(POSITIVE),
                "seeds": Optional(Int(1, MAX_SEEDS)), "epochs": Optional(Float(0, 1000, low_open=True)),
                "train": TRAIN}),
})


MAX_PRESET_BYTES = 1 << 20  # the largest preset file (the shipped ones are ~2 KB)
MAX_DEPTH = 16  # the deepest nesting of objects and arrays (the shipped presets: 5)


def depth(value):
    """How deeply objects and arrays nest in a JSON value (a scalar: 0), counted without recursion."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, d = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, d + 1)
            if deepest > MAX_DEPTH:
                return deepest
            level.extend((child, d + 1) for child in children)
    return deepest


def read_preset_file(path):
    """The JSON value of a preset file, or PresetError naming the file and why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PRESET_BYTES + 1)
    except OSError as error:
        raise PresetError(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > MAX_PRESET_BYTES:
        raise PresetError(f"{path}: larger than the largest preset, {limits.size_words(MAX_PRESET_BYTES)}")
    try:
        preset = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PresetError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise PresetError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise PresetError(f"{path}: nested deeper than a preset may be ({MAX_DEPTH} levels)") from None
    if depth(preset) > MAX_DEPTH:
        raise PresetError(f"{path}: nested deeper than a preset may be ({MAX_DEPTH} levels)")
    return preset


DEFAULT_PRECISION = 14  # coding.precision when the preset leaves it out (train/repro.py)


def precision_of(preset):
    return preset["coding"].get("precision", DEFAULT_PRECISION)


def check_window_bits(preset):
    """Every Equal-Info window must hold one symbol after a reset, b >= coding.precision (ref/equalinfo.py):
    found here, not after M1 and the other datasets were made."""
    precision = precision_of(preset)
    for number, entry in enumerate(preset["datasets"]["methods"]):
        for bits in entry.get("window_bits", []) if entry["method"] == "equalinfo" else []:
            if bits < precision:
                raise PresetError(f"datasets.methods[{number}].window_bits: {bits} is below coding.precision "
                                  f"{precision}; a window must hold any one symbol (b >= precision)")


def validate(preset, source="preset"):
    """Raise PresetError (`source: key.path: problem`) unless the preset fits PRESET and its training steps fit
    in this machine's memory (train/memory.py)."""
    if depth(preset) > MAX_DEPTH:
        raise PresetError(f"{source}: nested deeper than a preset may be ({MAX_DEPTH} levels)")
    try:
        PRESET.check(preset, "")
        check_window_bits(preset)
    except PresetError as error:
        raise PresetError(f"{source}: {error}") from None
    too_big = memory.check(preset)
    if too_big:
        raise PresetError(f"{source}: {too_big}")
