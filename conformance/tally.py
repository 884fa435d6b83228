"""Counting checks of one family: every comparison is one check; a failed one keeps a short reason.

Also how an outside program's answers (conformance/protocol.py) are judged: Tally.answer compares one answer key
of its response with what the vectors expect: an exact array, a Within(array, tolerance), or MUST_REJECT (the input
had to be refused).
"""
from dataclasses import dataclass

import numpy as np

MUST_REJECT = "rejected"  # the expected answer to an input the rule refuses: the program must answer true


@dataclass(frozen=True)
class Within:
    """An expected answer checked within a tolerance (Tally.close) rather than bit for bit."""
    value: np.ndarray
    tolerance: float


class Tally:
    """Checks of one family against one backend. `failures` holds "vector: what differs" lines."""

    MAX_REASONS = 5  # failure lines kept for the report (all are counted)

    def __init__(self):
        self.checks = 0
        self.failures = []

    def expect(self, ok, where, what):
        self.checks += 1
        if not ok:
            self.failures.append(f"{where}: {what}")
        return ok

    def same(self, got, want, where, what):
        """Exact equality of two arrays (shape, values; floats compared by bit pattern)."""
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return self.expect(False, where, f"{what} has shape {got.shape}, expected {want.shape}")
        if want.dtype.kind == "f":
            got = got.astype(want.dtype)
            equal = got.view(np.uint8).tobytes() == want.view(np.uint8).tobytes()
        else:
            equal = np.array_equal(got.astype(np.int64), want.astype(np.int64))
        if equal:
            return self.expect(True, where, what)
        first = int(np.flatnonzero(got.reshape(-1) != want.reshape(-1))[0]) if got.size else 0
        if want.dtype.kind == "f" and np.array_equal(got, want):
            detail = "values equal but bit patterns differ (signed zero or NaN payload)"
        else:
            detail = (f"first difference at flat index {first}: got {got.reshape(-1)[first].item()!r}, "
                      f"expected {want.reshape(-1)[first].item()!r}")
        return self.expect(False, where, f"{what} differs ({detail})")

    def close(self, got, want, tolerance, where, what):
        """max |got - want| <= tolerance * max |want| (the relative error of a tensor, as llm.c measures it)."""
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return self.expect(False, where, f"{what} has shape {got.shape}, expected {want.shape}")
        error = float(np.abs(got - want).max()) if want.size else 0.0
        scale = float(np.abs(want).max()) if want.size else 0.0
        ok = bool(np.all(np.isfinite(got))) and error <= tolerance * scale
        return self.expect(ok, where, f"{what}: relative error {error / scale if scale else error:.3g} "
                                      f"> tolerance {tolerance:g}")

    def answer(self, key, want, response):
        """One answer of an outside program: response[key] (JSON: numbers, nested lists, booleans) against want."""
        if key not in response:
            return self.expect(False, key, "missing from the response")
        got = response[key]
        if isinstance(want, str) and want == MUST_REJECT:
            return self.expect(got is True, key, f"answered {json_repr(got)}; the input must be rejected (true)")
        try:
            array = np.asarray(got)
            if array.dtype.kind not in "biuf":
                raise ValueError
        except ValueError:
            return self.expect(False, key, f"is not a number or an array of numbers: {json_repr(got)}")
        if isinstance(want, Within):
            return self.close(array, want.value, want.tolerance, key, "answer")
        if want.dtype.kind in "iub" and array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
            return self.expect(False, key, "holds a number that is not an integer where integers are expected")
        return self.same(array, want, key, "answer")

    def call(self, where, what, function, *args, **kwargs):
        """function(*args, **kwargs), or None after counting a failed check if it raises."""
        try:
            return function(*args, **kwargs)
        except Exception as error:  # a backend that crashes on a vector fails that vector
            self.expect(False, where, f"{what} raised {type(error).__name__}: {error}")
            return None

    def raises(self, where, what, function, *args):
        """One check: function(*args) must raise a ValueError (the coder's and tokens' rejection)."""
        try:
            function(*args)
        except ValueError:
            return self.expect(True, where, what)
        except Exception as error:
            return self.expect(False, where, f"{what} raised {type(error).__name__} instead of a ValueError")
        return self.expect(False, where, f"{what} was accepted; it must be rejected")


def json_repr(value, limit=60):
    """A short printable form of a JSON value for a failure line."""
    import json

    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def refuses(function, *args):
    """True if function(*args) raises a ValueError: how our code answers "reject this input" for the protocol."""
    try:
        function(*args)
    except ValueError:
        return True
    return False
