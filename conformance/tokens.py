"""Family `tokens`: bitstreams -> N-bit tokens (N = 1, 8, 16) and back, with the zero-padding rule (ref.tokens).

Token k is bits [k*N, (k+1)*N) read big-endian; a bitstream whose length is not a multiple of N gets zero bits
appended to fill its last token, and tokens -> bits with the original length drops them again (non-zero padding
is rejected). Every backend uses the one implementation, ref.tokens.
"""
import numpy as np

from equalinfo.conformance.tally import MUST_REJECT, refuses

NAME = "tokens"
SEED = 1404
LENGTHS = (0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100)
WIDTHS = (1, 8, 16)


def build():
    from equalinfo.ref.tokens import bits_to_tokens

    rng = np.random.default_rng(SEED)
    arrays, cases = {}, []
    for number, length in enumerate(LENGTHS):
        key = f"{number:03d}"
        bits = rng.integers(0, 2, length).astype(np.uint8)
        if length:
            bits[-1] = 1  # a 1 in the last bit: padding must not be confused with it
        arrays[f"bits.{key}"] = bits
        case = {"id": key, "n_bits": length, "n_tokens": {}, "padding_bits": {}}
        for width in WIDTHS:
            tokens = bits_to_tokens(bits, width)
            arrays[f"tokens.{key}.{width}"] = tokens
            case["n_tokens"][str(width)] = int(len(tokens))
            case["padding_bits"][str(width)] = int(len(tokens) * width - length)
        cases.append(case)
    rejected = []
    for number, (width, tokens, n_bits) in enumerate([(8, [0xA5, 0x81], 9), (16, [0x0001], 15), (8, [0x80], 0)]):
        key = f"{number:03d}"
        arrays[f"rejected.{key}"] = np.array(tokens)
        rejected.append({"id": key, "bits_per_token": width, "n_bits": n_bits,
                         "breaks": "padding bits past n_bits must be zero / n_bits must fit the tokens"})
    description = {
        "family": NAME,
        "rule": "token k = sum_i bits[k*N + i] * 2^(N-1-i), bits past the end read as 0",
        "arrays": {"bits.ID": "|u1 [n_bits]", "tokens.ID.N": "<i8 [ceil(n_bits / N)]",
                   "rejected.ID": "<i8 tokens that must not convert back to n_bits bits"},
        "cases": cases,
        "rejected": rejected,
    }
    return description, arrays


def check(description, arrays, impl, tally):
    from equalinfo.ref.tokens import bits_to_tokens, tokens_to_bits

    for case in description["cases"]:
        bits = arrays[f"bits.{case['id']}"]
        for width in WIDTHS:
            where = f"case {case['id']} ({case['n_bits']} bits, N={width})"
            want = arrays[f"tokens.{case['id']}.{width}"]
            got = tally.call(where, "bits_to_tokens", bits_to_tokens, bits, width)
            if got is not None:
                tally.same(got, want, where, "tokens")
            got = tally.call(where, "tokens_to_bits", tokens_to_bits, want, width, case["n_bits"])
            if got is not None:
                tally.same(got, bits, where, "bits back")
            padded = np.zeros(len(want) * width, dtype=np.uint8)
            padded[:len(bits)] = bits
            got = tally.call(where, "tokens_to_bits", tokens_to_bits, want, width)
            if got is not None:
                tally.same(got, padded, where, "bits with their zero padding")
    for case in description["rejected"]:
        tally.raises(f"rejected {case['id']}", "tokens_to_bits", tokens_to_bits, arrays[f"rejected.{case['id']}"],
                     case["bits_per_token"], case["n_bits"])


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(description, arrays):
    """(description, arrays, expected): every array is asked (tokens_to_bits reads tokens.ID.N); the answers are
    to_tokens.ID.N (the tokens of bits.ID), to_bits.ID.N (the bits of tokens.ID.N given n_bits) and rejected.ID
    (true) for every token list that must not convert back."""
    expected = {}
    for case in description["cases"]:
        for width in WIDTHS:
            key = f"{case['id']}.{width}"
            expected[f"to_tokens.{key}"] = arrays[f"tokens.{key}"]
            expected[f"to_bits.{key}"] = arrays[f"bits.{case['id']}"]
    expected.update({f"rejected.{case['id']}": MUST_REJECT for case in description["rejected"]})
    return description, arrays, expected


def answer(description, arrays, impl):
    from equalinfo.ref.tokens import bits_to_tokens, tokens_to_bits

    answers = {}
    for case in description["cases"]:
        for width in WIDTHS:
            key = f"{case['id']}.{width}"
            answers[f"to_tokens.{key}"] = bits_to_tokens(arrays[f"bits.{case['id']}"], width)
            answers[f"to_bits.{key}"] = tokens_to_bits(arrays[f"tokens.{key}"], width, case["n_bits"])
    for case in description["rejected"]:
        answers[f"rejected.{case['id']}"] = refuses(tokens_to_bits, arrays[f"rejected.{case['id']}"],
                                                    case["bits_per_token"], case["n_bits"])
    return answers
