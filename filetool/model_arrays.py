"""What a stored model's arrays must look like, per kind: one declarative schema, checked before a model is built.

A model archive (a model file, or the model embedded in a compressed file) is a dict name -> array. The models'
constructors check what they need to compute, but an archive can be wrong in ways a constructor never expects
(`order` a vector or a string, counts in floats, an extra array); the schema below refuses all of those with one
message naming the array, first on dtypes and shapes alone (before the data is read, filetool/npz.py) and then on the
values (counts in range, context ids that name real contexts, finite weights).

Shapes: an int is a fixed size, a letter a size that must be the same wherever it appears, None any shape.
A name ending in '*' is a family of arrays (M1's parameters).
"""
import fnmatch
from dataclasses import dataclass

import numpy as np

from equalinfo.ref.models import MarkovModel
from equalinfo.ref.symbols import N_INPUTS, N_SYMBOLS

MAX_COUNT = 1 << 48  # a count table's entries: far above any real count, low enough that row sums fit int64


@dataclass(frozen=True)
class Array:
    kind: str  # "int" (signed or unsigned integers) or "float" (float32 or float64)
    shape: tuple = None  # None: any shape
    required: bool = True


SCHEMAS = {
    "unigram": {"counts": Array("int", (N_SYMBOLS,))},
    "markov": {"order": Array("int", ()), "context_ids": Array("int", ("n",)),
               "counts": Array("int", ("n", N_SYMBOLS))},
    "transformer": {"params.*.int": Array("int"),  # rule 2's integer weights (ref/integer_m1.py), before params.*
                    "params.*": Array("float"), "config.n_heads": Array("int", ()),
                    "config.max_distance": Array("int", ()), "coding.exact_m1_version": Array("int", ()),
                    "coding.max_window_symbols": Array("int", (), required=False),  # M1s of equalinfo 0.1.0
                    "coding.restart_symbols": Array("int", (), required=False)},  # ref/m1.py: restart_every
}


def _dtype_ok(kind, dtype):
    if kind == "int":
        return dtype.kind in "iu"
    return dtype in (np.dtype(np.float32), np.dtype(np.float64))


def check_meta(kind, meta):
    """Raise ValueError unless meta (name -> (dtype, shape)) fits the kind's schema."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(SCHEMAS)})")
    schema, sizes = SCHEMAS[kind], {}
    for name, (dtype, shape) in sorted(meta.items()):
        pattern = next((p for p in schema if fnmatch.fnmatchcase(name, p)), None)
        if pattern is None:
            raise ValueError(f"a {kind} model has no array {name!r}")
        spec = schema[pattern]
        if not _dtype_ok(spec.kind, np.dtype(dtype)):
            raise ValueError(f"{kind} model array {name!r} has dtype {dtype}, it must be {spec.kind}")
        if spec.shape is None:
            continue
        if len(shape) != len(spec.shape):
            raise ValueError(f"{kind} model array {name!r} has shape {shape}, it must have {len(spec.shape)} "
                             f"dimension(s)")
        for size, wanted in zip(shape, spec.shape):
            if isinstance(wanted, str):
                wanted = sizes.setdefault(wanted, size)
            if size != wanted:
                raise ValueError(f"{kind} model array {name!r} has shape {shape}, which does not fit "
                                 f"{tuple(spec.shape)} (with the other arrays)")
    missing = [p for p, spec in schema.items() if spec.required
               and not any(fnmatch.fnmatchcase(name, p) for name in meta)]
    if missing:
        raise ValueError(f"a {kind} model needs the array(s) {', '.join(missing)}")


def check_values(kind, arrays):
    """Raise ValueError unless the values of a kind's arrays are in range (after check_meta)."""
    if kind in ("unigram", "markov"):
        counts = arrays["counts"]
        if counts.size and (counts.min() < 0 or counts.max() > MAX_COUNT):
            raise ValueError(f"{kind} model counts must be in 0..2^48")
    if kind == "markov":
        order = int(arrays["order"])
        if not 1 <= order <= MarkovModel.MAX_ORDER:
            raise ValueError(f"markov model order {order} is outside 1..{MarkovModel.MAX_ORDER}")
        ids = arrays["context_ids"]
        if ids.size and (ids.min() < 0 or int(ids.max()) >= N_INPUTS ** order):
            raise ValueError(f"markov model context ids must be in 0..258^{order} - 1")
    if kind == "transformer":
        for name, value in arrays.items():
            if name.startswith("params.") and not np.all(np.isfinite(value)):
                raise ValueError(f"transformer model array {name!r} holds non-finite values")


def check_model_arrays(kind, arrays):
    """check_meta then check_values on loaded arrays (dict name -> array)."""
    check_meta(kind, {name: (value.dtype, value.shape) for name, value in arrays.items()})
    check_values(kind, arrays)


def fits_some_kind(meta):
    """Raise ValueError unless meta fits at least one kind's schema (used before a model file's kind is read); the
    error is the one of the kind whose array names the archive matches best."""
    errors = []
    for kind, schema in SCHEMAS.items():
        try:
            check_meta(kind, meta)
            return
        except ValueError as error:
            matched = sum(any(fnmatch.fnmatchcase(name, p) for p in schema) for name in meta)
            errors.append((matched, str(error)))
    raise ValueError(max(errors, key=lambda entry: entry[0])[1])
