"""Family `rejections`: inputs a conforming implementation must refuse, one vector per rule that a first outside
implementation found missing from the spec (added in format version 3; the families of version 2 are unchanged).

- tokens -> bits (ref.tokens.tokens_to_bits): a token value >= 2^N, a negative token, and a trailing all-zero token
  past the ceil(n_bits / N) tokens that n_bits needs (it is not padding to drop: the count does not fit);
- Equal-Info windows (ref.equalinfo): window_bits b < precision P, refused by the encoder and the decoder alike (a
  symbol of probability 2^-P needs P bits, so a smaller window might hold no symbol at all), and a bitstream that
  is not a whole number of b-bit windows.
Each case names the operation and its arguments; the answer is that the operation raises (a ValueError here).
The windows cases code SYMBOLS with the uniform model (every p = 1/257), so no model array is needed.
"""
import numpy as np

from equalinfo.conformance.tally import MUST_REJECT, refuses

NAME = "rejections"
SYMBOLS = b"rejected"
CASES = [  # (kind, operation, arguments, the rule it breaks)
    ("token-too-large", "tokens_to_bits", {"tokens": [0xA5, 0x100], "bits_per_token": 8, "n_bits": 16},
     "every token lies in 0 .. 2^N - 1"),
    ("token-16-too-large", "tokens_to_bits", {"tokens": [0x10000], "bits_per_token": 16, "n_bits": 16},
     "every token lies in 0 .. 2^N - 1"),
    ("token-negative", "tokens_to_bits", {"tokens": [0x12, -1], "bits_per_token": 8, "n_bits": 16},
     "every token lies in 0 .. 2^N - 1"),
    ("trailing-zero-token", "tokens_to_bits", {"tokens": [0xA5, 0x00], "bits_per_token": 8, "n_bits": 8},
     "exactly ceil(n_bits / N) tokens: a trailing all-zero token is not padding"),
    ("trailing-zero-tokens-16", "tokens_to_bits", {"tokens": [0x8001, 0, 0], "bits_per_token": 16, "n_bits": 16},
     "exactly ceil(n_bits / N) tokens: a trailing all-zero token is not padding"),
    ("encode-window-below-precision", "equalinfo_compress", {"window_bits": 13, "precision": 14},
     "window_bits >= precision"),
    ("decode-window-below-precision", "equalinfo_decompress", {"window_bits": 13, "precision": 14, "n_bits": 26},
     "window_bits >= precision"),
    ("decode-partial-window", "equalinfo_decompress", {"window_bits": 16, "precision": 14, "n_bits": 24},
     "the bits are a whole number of b-bit windows"),
]


def uniform_model():
    from equalinfo.ref.models import MarkovModel

    return MarkovModel(1, np.zeros(0, dtype=np.int64), np.zeros((0, 257), dtype=np.int64))


def build():
    from equalinfo.ref.symbols import bytes_to_symbols

    arrays, cases = {"symbols": bytes_to_symbols(SYMBOLS)}, []
    for number, (kind, operation, arguments, rule) in enumerate(CASES):
        key = f"{number:03d}"
        case = {"id": key, "kind": kind, "operation": operation, "breaks": rule}
        if operation == "tokens_to_bits":
            arrays[f"tokens.{key}"] = np.array(arguments["tokens"], dtype=np.int64)
            case.update(bits_per_token=arguments["bits_per_token"], n_bits=arguments["n_bits"])
        else:
            case.update(window_bits=arguments["window_bits"], precision=arguments["precision"])
            if operation == "equalinfo_decompress":
                arrays[f"bits.{key}"] = np.resize(np.array([1, 0, 1, 1, 0], dtype=np.uint8), arguments["n_bits"])
                case["n_symbols"] = len(SYMBOLS)
        cases.append(case)
    description = {
        "family": NAME,
        "operations": {"tokens_to_bits": "tokens.ID (N = bits_per_token, n_bits) -> bits",
                       "equalinfo_compress": "Equal-Info windows of `symbols` (window_bits, precision)",
                       "equalinfo_decompress": "bits.ID -> n_symbols symbols (window_bits, precision)"},
        "model": "uniform: p(s) = 1/257 for every s and context (the windows family's rule with no stored context)",
        "arrays": {"symbols": "<i8 [n] what equalinfo_compress codes", "tokens.ID": "<i8 tokens to refuse",
                   "bits.ID": "|u1 bits to refuse"},
        "cases": cases,
    }
    return description, arrays


def attempt(case, arrays, impl):
    """(function, args) of one case's operation with the backend."""
    from equalinfo.ref.tokens import tokens_to_bits

    key, operation = case["id"], case["operation"]
    if operation == "tokens_to_bits":
        return tokens_to_bits, (arrays[f"tokens.{key}"], case["bits_per_token"], case["n_bits"])
    if operation == "equalinfo_compress":
        return impl.equalinfo.compress, (arrays["symbols"], uniform_model(), case["window_bits"], case["precision"])
    return impl.equalinfo.decompress, (arrays[f"bits.{key}"], uniform_model(), case["window_bits"],
                                       case["precision"], case["n_symbols"])


def check(description, arrays, impl, tally):
    for case in description["cases"]:
        function, args = attempt(case, arrays, impl)
        tally.raises(f"case {case['id']} ({case['kind']})", case["operation"], function, *args)


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(description, arrays):
    """(description, arrays, expected): everything is asked; the answer is rejected.ID (true) for every case."""
    return description, arrays, {f"rejected.{case['id']}": MUST_REJECT for case in description["cases"]}


def answer(description, arrays, impl):
    answers = {}
    for case in description["cases"]:
        function, args = attempt(case, arrays, impl)
        answers[f"rejected.{case['id']}"] = refuses(function, *args)
    return answers
