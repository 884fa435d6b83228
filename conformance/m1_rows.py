"""Families `m1_RULE`: a tiny M1's probability rows under each exact rule, bit for bit, and the windows they code.

For each rule in RULES (one entry per rule; rule 1 is ref/exact_m1.py): a tiny M1 (its float32 weights included),
input sequences [B, T] starting with BOS -> the rule's float32 logits and float64 probabilities (compared as bit
patterns) -> integer CDFs at precision 14 -> the Equal-Info windows (and plain AC) of a short text coded with M1.
The check also evaluates a prefix of the inputs alone and expects the same leading rows: a row depends on its
prefix and the weights only, which is what lets a decoder rebuild the encoder's rows one symbol at a time.

Rule 2 (ref/integer_m1.py) is one more entry in RULES, family m1_integer_m1, rather than a family module of its
own: its rows, CDFs, prefix check and windows are exactly rule 1's fields, computed by another module, and a
porter reads both families the same way. What only rule 2 has (the quantized M1, its integer products step by
step, the rule's edge cases) is the rule's `extension`, conformance/m1_integer.py. Rule 3 (ref/int8_m1.py) is the
third entry, family m1_int8_m1, with its own steps (the int8 split included) in conformance/m1_int8.py; rule 4
(ref/int8_rows_m1.py) the fourth, family m1_int8_rows_m1, with its steps (7-bit rows, one GEMM, keys and values
rounded to bfloat16) in conformance/m1_int8_rows.py.
"""
import dataclasses
import importlib

import numpy as np

from equalinfo.ref.exact_rules import RULE_MODULES
from equalinfo.train import backends

SEED = 1405
TEXT = "Equal-Info windows reset M1 at every window.\x00Ok."
INPUT_TEXTS = ["Hello, M1! Every window", "\u00e9t\u00e9 \u2014 caf\u00e9s\x00and an end"]  # \x00 marks EOS
PRECISION = 14
PREFIX = 7  # the prefix evaluated alone in the check
SETTINGS = [("ac", None), ("equalinfo", 16), ("equalinfo", 48)]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One exact rule by its version (ref/exact_rules.py); each backend's module computing it comes from
    train.backends.exact_rule, with next_probs(params, cfg, inputs) and logits(params, cfg, inputs), the logits
    before the float64 softmax, both checked bit for bit.
    `extension`: a module with the rule's own fields (m1_integer.py is the interface), or None."""
    version: int
    extension: str = None

    @property
    def name(self):
        return RULE_MODULES[self.version]

    @property
    def family(self):
        return f"m1_{self.name}"

    def module(self, backend):
        """The backend's module computing the rule, or None if it cannot be imported here."""
        try:
            return backends.exact_rule(self.version, backend)
        except backends.BackendUnavailable:
            return None

    def extended(self):
        return None if self.extension is None else importlib.import_module(self.extension)

    def model_and_inputs(self):
        """(params, cfg, inputs) of the family: the tiny M1 and INPUT_TEXTS, as the extension changes them."""
        params, cfg = tiny_m1()
        extension = self.extended()
        if extension is None:
            return params, cfg, inputs(INPUT_TEXTS)
        return extension.model(params, cfg), cfg, inputs(INPUT_TEXTS + [extension.EXTRA_TEXT])


RULES = [Rule(1), Rule(2, extension="equalinfo.conformance.m1_integer"),
         Rule(3, extension="equalinfo.conformance.m1_int8"), Rule(4, extension="equalinfo.conformance.m1_int8_rows")]


def tiny_m1():
    """(params, cfg) of a micro-sized float32 M1 with perturbed norm scales and strong relative biases."""
    from equalinfo.ref import transformer
    from equalinfo.ref.symbols import N_INPUTS, N_SYMBOLS

    cfg = transformer.make_config("micro", vocab_in=N_INPUTS, vocab_out=N_SYMBOLS, dtype="float32")
    params = transformer.init_params(cfg, SEED)
    rng = np.random.default_rng(SEED)
    for name, value in params.items():
        if name.endswith("norm"):
            params[name] = (1.0 + 0.2 * rng.standard_normal(value.shape)).astype(np.float32)
        elif name.endswith("rel_bias"):
            params[name] = rng.standard_normal(value.shape).astype(np.float32)
    params["unembed"] = (params["unembed"] * 4).astype(np.float32)  # peakier rows: several symbols per window
    return params, cfg


def inputs(texts):
    """[B, T] int64: BOS then the symbols of each text (EOS where it has \\x00), padded with BOS to length."""
    from equalinfo.ref.symbols import BOS, documents_to_symbols

    rows = [documents_to_symbols(text.split("\x00"))[:-1] for text in texts]  # no trailing EOS
    length = 1 + max(len(r) for r in rows)
    out = np.full((len(rows), length), BOS, dtype=np.int64)
    for b, row in enumerate(rows):
        out[b, 1:1 + len(row)] = row
    return out


def config_json(cfg):
    return {name: getattr(cfg, name) for name in ("vocab_in", "vocab_out", "d_model", "n_heads", "n_layers", "d_ff",
                                                  "num_buckets", "max_distance", "dtype")}


def build_rule(rule):
    from equalinfo.ref import ac, equalinfo
    from equalinfo.ref.arithmetic import quantize
    from equalinfo.ref.m1 import TransformerModel
    from equalinfo.ref.symbols import documents_to_symbols

    module = rule.module("ref")
    params, cfg, ids = rule.model_and_inputs()
    probs = module.next_probs(params, cfg, ids)
    arrays = {f"param.{name}": value for name, value in params.items()}
    arrays.update({"inputs": ids, "probs": probs, "cdfs": quantize(probs, PRECISION)})
    arrays["logits"] = module.logits(params, cfg, ids)  # the rule's logits before its float64 softmax
    model = TransformerModel(params, cfg, rows=module.next_probs, rule=rule.version)
    symbols = documents_to_symbols(TEXT.split("\x00"))
    arrays["symbols"] = symbols
    vectors = []
    for number, (method, window_bits) in enumerate(SETTINGS):
        key = f"{number:03d}"
        vector = {"id": key, "method": method, "window_bits": window_bits, "precision": PRECISION,
                  "n_symbols": int(len(symbols))}
        if method == "ac":
            bits = ac.compress(symbols, model, PRECISION)
        else:
            windows = equalinfo.encode_windows(symbols, model, window_bits, PRECISION)
            bits = np.concatenate([w.bits for w in windows])
            vector.update({"n_windows": len(windows), "window_lengths": [w.length for w in windows],
                           "greedy_lengths": [w.greedy_length for w in windows],
                           "delimited": [int(w.delimited) for w in windows],
                           "ended_early": [i for i, w in enumerate(windows) if w.length < w.greedy_length]})
        vector["n_bits"] = int(len(bits))
        arrays[f"bits.{key}"] = bits
        vectors.append(vector)
    description = {
        "family": rule.family,
        "rule": rule.name,
        "rule_version": rule.version,
        "config": config_json(cfg),
        "precision": PRECISION,
        "prefix_checked": PREFIX,
        "arrays": {"param.NAME": "<f4 M1's parameters (DESIGN names)", "inputs": "<i8 [B, T] ids, BOS = 257 first",
                   "logits": "<f4 [B, T, 257] the rule's logits", "probs": "<f8 [B, T, 257] compare bit patterns",
                   "cdfs": f"<i8 [B, T, 258] quantize(probs, {PRECISION})",
                   "symbols": "<i8 [n] the coded text", "bits.ID": "|u1 the vector's bits"},
        "vectors": vectors,
    }
    if rule.extended() is not None:
        rule.extended().build(description, arrays, params, cfg, ids, module)
    return description, arrays


def check_rule(rule, description, arrays, impl, tally):
    from equalinfo.ref.m1 import TransformerModel
    from equalinfo.ref.transformer import Config
    from equalinfo.conformance.windows import check_vector

    module = rule.module(impl.backend)
    if module is None:
        tally.expect(False, rule.name, f"backend {impl.backend} has no implementation of this rule")
        return
    tally.expect(description["rule_version"] == rule.version, "rule",
                 f"the vectors follow version {description['rule_version']}, this build computes {rule.version}")
    cfg = Config(**description["config"])
    params = {name[len("param."):]: value for name, value in arrays.items() if name.startswith("param.")}
    ids = arrays["inputs"]
    if "logits" in arrays:
        got = tally.call("rows", "logits", module.logits, params, cfg, ids)
        if got is not None:
            tally.same(np.asarray(got), arrays["logits"], "rows", "logits")
    got = tally.call("rows", "next_probs", module.next_probs, params, cfg, ids)
    if got is not None:
        tally.same(got, arrays["probs"], "rows", "probability rows")
        cdfs = tally.call("rows", "quantize", impl.arithmetic.quantize, got, description["precision"])
        if cdfs is not None:
            tally.same(cdfs, arrays["cdfs"], "rows", "CDFs")
    prefix = description["prefix_checked"]
    got = tally.call("rows", "next_probs of a prefix", module.next_probs, params, cfg, ids[:, :prefix])
    if got is not None:
        tally.same(got, arrays["probs"][:, :prefix], "rows", f"rows of the first {prefix} inputs evaluated alone")
    model = TransformerModel(params, cfg, rows=module.next_probs, rule=rule.version)
    for vector in description["vectors"]:
        check_vector(vector, arrays[f"bits.{vector['id']}"], arrays["symbols"], model, impl, tally,
                     f"vector {vector['id']}")
    if rule.extended() is not None:
        rule.extended().check(description, arrays, params, cfg, module, impl, tally)


ROW_ANSWERS = ("logits", "probs", "cdfs")  # arrays a request leaves out; answered under the same names


def request_rule(rule, description, arrays):
    """(description, arrays, expected) for an outside program: the weights, inputs and text without the rows; the
    answers are logits (where the rule has them), probs, cdfs, prefix_probs (the first prefix_checked inputs
    evaluated alone), the windows' answers per vector (windows.vector_expected) and the extension's."""
    from equalinfo.conformance.windows import vector_expected, vector_request

    asked = {key: value for key, value in arrays.items() if key not in ROW_ANSWERS}
    expected = {key: arrays[key] for key in ROW_ANSWERS if key in arrays}
    expected["prefix_probs"] = arrays["probs"][:, :description["prefix_checked"]]
    for vector in description["vectors"]:
        expected.update(vector_expected(vector, arrays[f"bits.{vector['id']}"], arrays["symbols"]))
    asked_description = dict(description, vectors=[vector_request(vector) for vector in description["vectors"]])
    if rule.extended() is not None:
        asked = rule.extended().request(asked, expected)
    return asked_description, asked, expected


def answer_rule(rule, description, arrays, impl):
    """The backend's answers to a request of the rule's family (request_rule)."""
    from equalinfo.conformance.windows import vector_answers
    from equalinfo.ref.m1 import TransformerModel
    from equalinfo.ref.transformer import Config

    module = rule.module(impl.backend)
    cfg = Config(**description["config"])
    params = {name[len("param."):]: value for name, value in arrays.items() if name.startswith("param.")}
    ids = arrays["inputs"]
    answers = {"probs": module.next_probs(params, cfg, ids),
               "prefix_probs": module.next_probs(params, cfg, ids[:, :description["prefix_checked"]])}
    answers["cdfs"] = impl.arithmetic.quantize(answers["probs"], description["precision"])
    answers["logits"] = module.logits(params, cfg, ids)
    model = TransformerModel(params, cfg, rows=module.next_probs, rule=rule.version)
    for vector in description["vectors"]:
        answers.update(vector_answers(vector, arrays[f"bits.{vector['id']}"], arrays["symbols"], model, impl))
    if rule.extended() is not None:
        answers.update(rule.extended().answer(description, arrays, params, cfg, module, impl))
    return answers


class Family:
    """The family of one rule, with the module-level interface the other families have."""

    def __init__(self, rule):
        self.rule, self.NAME = rule, rule.family

    def build(self):
        return build_rule(self.rule)

    def check(self, description, arrays, impl, tally):
        check_rule(self.rule, description, arrays, impl, tally)

    def request(self, description, arrays):
        return request_rule(self.rule, description, arrays)

    def answer(self, description, arrays, impl):
        return answer_rule(self.rule, description, arrays, impl)


FAMILIES = [Family(rule) for rule in RULES]
