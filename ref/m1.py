"""M1, the Transformer as a coding model: ref/transformer.py's parameters behind ref/models.py's protocol."""
import copy

import numpy as np

from equalinfo.ref import transformer
from equalinfo.ref.exact_rules import known_versions, rule_module
from equalinfo.ref.models import ModelError, check_inputs
from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS

RETIRED_WINDOW_CAP = "coding.max_window_symbols"  # an array older M1s store; TransformerModel says why
NO_WINDOW_CAP = -1  # its only value this equalinfo reads: "windows are not capped by a symbol count"


class TransformerModel:
    """M1: a Transformer (ref/transformer.py's parameters) as a coding model, with bit-reproducible rows.

    Determinism (docs/design.md, "Determinism of M1's probabilities"): the coders quantise every row into an
    integer CDF, and the decoder, which sees a window's prefix one symbol at a time, must get exactly the rows the
    encoder got, whatever the batch size B or length T of the calls that produced them, and whichever backend or
    machine made them. Ordinary float code promises none of that, so the rows come from an exact rule, which fixes
    every rounding: row t depends on inputs 0..t of its own sequence and the weights alone. `rows` picks the
    implementation of the rule: its ref module's next_probs (the default) or a fast twin (train.backends.exact_rule),
    tested bit for bit against each other, so a file compressed with one decodes with the other. The rule's version
    is part of `arrays()`, hence of the model's fingerprint: a file made under another rule is refused rather than
    decoded into garbage.

    `rule` is the version of the exact arithmetic (ref/exact_rules.py): 1, fixed-order float reductions over the
    float parameters (ref/exact_m1.py); 2, integer matrix products over quantized parameters
    (ref/integer_m1.py: `quantize_params` makes them from a float M1). The arrays name the rule, and from_arrays
    rebuilds the model under it, so files of either rule decode; an unknown version is refused by number.

    `restart_every` = L makes M1 start afresh every L symbols: symbol t is predicted from BOS and the symbols since
    the last multiple of L, never from more. M1 is trained on BOS-started sequences of seq_len symbols
    (train/m1.py), so with L = seq_len it never reads a context longer than those it was trained on (its
    relative-position buckets would otherwise saturate and its rows extrapolate), and the cost of a row stays
    bounded on inputs of any length. Plain AC over a whole file needs it; an Equal-Info window, which restarts M1
    anyway, is far shorter than L. L is part of `arrays()` ("coding.restart_symbols", present only when set, so
    every fingerprint made without it stays valid): a decoder with another L is refused, not garbled.

    M1s stored by equalinfo 0.1.0 also hold `coding.max_window_symbols` = -1 ("windows end on their bits alone"),
    a retired setting: the coders have no symbol cap (ref/equalinfo.py says why). New M1s do not store it, so the
    same weights have another fingerprint than they had then. `from_arrays` still reads old arrays and keeps the
    entry (`keeps_window_cap`), so an old M1 and everything coded with it keep their fingerprint;
    `with_window_cap_entry()` is a newly built M1 as 0.1.0 fingerprinted it (filetool/codec.py decodes old files
    with it). An M1 stored with any other cap is refused rather than decode its windows wrongly.
    """

    kind = "transformer"
    context_length = None  # every row may depend on the whole prefix since the last BOS-started reset

    def __init__(self, params, cfg, rows=None, rule=1, restart_every=None):
        module = rule_module(rule)
        if module is None:
            raise ModelError(f"this M1's rows follow version {rule!r} of the exact arithmetic, which this build "
                             f"does not compute (it knows versions {known_versions()}); upgrade equalinfo")
        if cfg.vocab_in != N_INPUTS or cfg.vocab_out != N_SYMBOLS:
            raise ModelError(f"an M1 transformer must read {N_INPUTS} ids and predict {N_SYMBOLS}, this one reads "
                             f"{cfg.vocab_in} and predicts {cfg.vocab_out}")
        try:
            module.check_params(params, cfg)
        except ValueError as error:
            raise ModelError(str(error)) from None
        self.params, self.cfg, self.rule = params, cfg, int(rule)
        self.restart_every = checked_restart_every(restart_every)
        self.rows = module.next_probs if rows is None else rows  # next_probs(params, cfg, inputs) of the rule
        self.keeps_window_cap = False  # True: arrays() holds the retired entry, as M1s of equalinfo 0.1.0 did

    def next_probs(self, inputs):
        """float64 probabilities [B, T, 257] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
        inputs = check_inputs(inputs)
        if self.restart_every is None:
            return self.rows(self.params, self.cfg, inputs)
        return restarted_rows(lambda chunks: self.rows(self.params, self.cfg, chunks), inputs, self.restart_every)

    def arrays(self):
        """The parameters plus what else fixes the rows: unshaped settings, the rule's version, L if set."""
        arrays = {"params." + name: value for name, value in self.params.items()}
        arrays.update({
            "config.n_heads": np.array(self.cfg.n_heads, dtype=np.int64),
            "config.max_distance": np.array(self.cfg.max_distance, dtype=np.int64),
            "coding.exact_m1_version": np.array(self.rule, dtype=np.int64),
        })
        if self.keeps_window_cap:
            arrays[RETIRED_WINDOW_CAP] = np.array(NO_WINDOW_CAP, dtype=np.int64)
        if self.restart_every is not None:
            arrays["coding.restart_symbols"] = np.array(self.restart_every, dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, dtype=None, rows=None):
        """Inverse of `arrays()` (the config is rebuilt from the shapes and the stored settings)."""
        if "coding.exact_m1_version" not in arrays:
            raise ModelError("this M1 was stored by an older equalinfo whose rows came from a fixed-shape BLAS "
                             "evaluation; they cannot be reproduced exactly here, so its data cannot be decoded")
        version = int(arrays["coding.exact_m1_version"])
        try:
            params = {name[len("params."):]: value for name, value in arrays.items() if name.startswith("params.")}
            n_layers = len({name.split(".")[1] for name in params if name.startswith("blocks.")})

            def shape(name):  # a float matrix's, or (rule 2) its integers'
                return (params[name] if name in params else params[name + ".int"]).shape

            cfg = transformer.Config(
                vocab_in=params["embed"].shape[0], vocab_out=shape("unembed")[1],
                d_model=params["embed"].shape[1], n_heads=int(arrays["config.n_heads"]), n_layers=n_layers,
                d_ff=shape("blocks.0.w_gate")[1], num_buckets=params["blocks.0.rel_bias"].shape[0],
                max_distance=int(arrays["config.max_distance"]), dtype=dtype or params["embed"].dtype.name)
            cap = int(arrays[RETIRED_WINDOW_CAP]) if RETIRED_WINDOW_CAP in arrays else None
            restart = int(arrays["coding.restart_symbols"]) if "coding.restart_symbols" in arrays else None
        except (KeyError, IndexError, ValueError) as error:
            raise ModelError(f"transformer model arrays are malformed: {error}") from None
        if cap not in (None, NO_WINDOW_CAP):
            raise ModelError(f"this M1 caps Equal-Info windows at {cap} symbols; windows here end on their bits "
                             f"alone, so its data cannot be decoded")
        model = cls(params, cfg, rows, rule=version, restart_every=restart)
        model.keeps_window_cap = cap is not None
        return model

    def _copy(self, **changes):
        model = copy.copy(self)
        model.__dict__.update(changes)
        return model

    def with_restarts(self, restart_every):
        """The same M1 (same rows and rule) restarting every `restart_every` symbols (None: never)."""
        return self._copy(restart_every=checked_restart_every(restart_every))

    def with_rows(self, rows):
        """The same M1 with its rows from `rows`, another implementation of its rule (the same bits, bit for bit)."""
        return self._copy(rows=rows)

    def with_window_cap_entry(self):
        """The same M1 with the arrays, hence the fingerprint, that equalinfo 0.1.0 gave it."""
        return self._copy(keeps_window_cap=True)


def checked_restart_every(restart_every):
    """L (an int >= 1) or None, or a ModelError."""
    if restart_every is not None and (int(restart_every) != restart_every or restart_every < 1):
        raise ModelError(f"an M1 restarts every L >= 1 symbols, got L = {restart_every!r}")
    return None if restart_every is None else int(restart_every)


def restarted_rows(rows, inputs, every):
    """Rows [B, T, V] of inputs [B, T] when the model starts afresh every `every` positions.

    Position t reads inputs from r = every * (t // every) on, with inputs[r] replaced by BOS (it holds symbol r - 1,
    which the restarted model does not see). So the inputs are cut into chunks of `every` positions, each chunk's
    first input becomes BOS, and the chunks go through `rows` as one batch [B * K, every] (the last chunk padded
    with BOS; a row depends on its prefix alone, so padding changes nothing before it).
    """
    batch, length = inputs.shape
    n_chunks = -(-length // every)
    chunks = np.full((batch, n_chunks * every), BOS, dtype=np.int64)
    chunks[:, :length] = inputs
    chunks = chunks.reshape(batch * n_chunks, every)  # [B * K, L]
    chunks[:, 0] = BOS
    out = rows(chunks)  # [B * K, L, V]
    return out.reshape(batch, n_chunks * every, -1)[:, :length]
