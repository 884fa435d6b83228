"""M1, the Transformer as a coding model: ref/transformer.py's parameters behind ref/models.py's protocol."""
import numpy as np

from equalinfo.ref import transformer
from equalinfo.ref.exact_rules import known_versions, rule_module
from equalinfo.ref.models import ModelError, check_inputs
from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS

NO_WINDOW_CAP = -1  # the value of arrays()["coding.max_window_symbols"]: windows are not capped by a symbol count


class TransformerModel:
    """M1: a Transformer (ref/transformer.py's parameters) as a coding model, with bit-reproducible rows.

    Determinism (docs/design.md, "Determinism of M1's probabilities"): the coders quantise every row into an integer CDF,
    and the decoder, which sees a window's prefix one symbol at a time, must get exactly the rows the encoder got,
    whatever the batch size B or length T of the calls that produced them, and whichever backend or machine made
    them. Ordinary float code promises none of that, so the rows come from ref/exact_m1.py, which fixes the order of
    every rounding (no BLAS, no library exp): row t depends on inputs 0..t of its own sequence and the weights alone.
    `rows` picks the implementation of that one rule: ref.exact_m1.next_probs (NumPy, the default) or a fast twin
    (fast.cpu.exact_m1.next_probs) -- tested bit for bit against each other, so a file compressed with one decodes
    with the other. The rule's version is part of `arrays()`, hence of the model's fingerprint: a file made under
    another rule is refused rather than decoded into garbage.

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

    `arrays()` also holds `coding.max_window_symbols` = -1, which says "windows end on their bits alone": it keeps the
    fingerprints of every M1 file and dataset ever written valid. The coders have no symbol cap (ref/equalinfo.py
    says why), so `from_arrays` refuses an M1 stored with any other value rather than decode its windows wrongly.
    """

    kind = "transformer"
    context_length = None  # every row may depend on the whole prefix since the last BOS-started reset

    def __init__(self, params, cfg, rows=None, prefix_rows=None, rule=1, restart_every=None):
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
        if restart_every is not None and (int(restart_every) != restart_every or restart_every < 1):
            raise ModelError(f"an M1 restarts every L >= 1 symbols, got L = {restart_every!r}")
        self.params, self.cfg, self.rule = params, cfg, int(rule)
        self.restart_every = None if restart_every is None else int(restart_every)
        self._rows = module.next_probs if rows is None else rows
        self._prefix_rows = prefix_rows  # optional: a class like fast.cpu.exact_m1.PrefixRows, for decoders

    def next_probs(self, inputs):
        """float64 probabilities [B, T, 257] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
        inputs = check_inputs(inputs)
        if self.restart_every is None:
            return self._rows(self.params, self.cfg, inputs)
        return restarted_rows(lambda chunks: self._rows(self.params, self.cfg, chunks), inputs, self.restart_every)

    def prefix_rows(self, n_slots):
        """A grower of n_slots prefixes, one input at a time with cached keys/values (its `extend(slots, inputs)`
        gives the rows next_probs would), or None if this model's rows come without one."""
        if self._prefix_rows is None:
            return None
        grower = self._prefix_rows(self.params, self.cfg, n_slots)
        return grower if self.restart_every is None else RestartingRows(grower, self.restart_every)

    def arrays(self):
        """The parameters plus what else fixes the rows and windows: unshaped settings, the rule's version."""
        arrays = {"params." + name: value for name, value in self.params.items()}
        arrays.update({
            "config.n_heads": np.array(self.cfg.n_heads, dtype=np.int64),
            "config.max_distance": np.array(self.cfg.max_distance, dtype=np.int64),
            "coding.exact_m1_version": np.array(self.rule, dtype=np.int64),
            "coding.max_window_symbols": np.array(NO_WINDOW_CAP, dtype=np.int64),
        })
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
            cap = int(arrays["coding.max_window_symbols"])
            restart = int(arrays["coding.restart_symbols"]) if "coding.restart_symbols" in arrays else None
        except (KeyError, IndexError, ValueError) as error:
            raise ModelError(f"transformer model arrays are malformed: {error}") from None
        if cap != NO_WINDOW_CAP:
            raise ModelError(f"this M1 caps Equal-Info windows at {cap} symbols; windows here end on their bits "
                             f"alone, so its data cannot be decoded")
        return cls(params, cfg, rows, rule=version, restart_every=restart)

    def with_restarts(self, restart_every):
        """The same M1 (same rows, rule and grower) restarting every `restart_every` symbols (None: never)."""
        return TransformerModel(self.params, self.cfg, self._rows, self._prefix_rows, self.rule, restart_every)


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


class RestartingRows:
    """A key/value-cached grower (fast.cpu.exact_m1.PrefixRows' interface) whose slots start afresh every `every`
    inputs: the input at a multiple of `every` is replaced by BOS and the slot's cache is reset before it, so
    `extend` gives the rows of restarted_rows and a slot never holds more than `every` positions."""

    def __init__(self, grower, every):
        self.grower, self.every = grower, int(every)
        self.lengths = np.zeros(len(grower.lengths), dtype=np.int64)  # inputs appended since reset, restarts aside

    def reset(self, slots):
        self.grower.reset(slots)
        self.lengths[slots] = 0

    def extend(self, slots, inputs):
        """float64 rows [A, V] after appending inputs [A] to slots [A] (a slot may repeat: its inputs in order)."""
        slots = np.asarray(slots, dtype=np.int64)
        inputs = np.array(inputs, dtype=np.int64)
        order = np.argsort(slots, kind="stable")
        rank = np.empty(len(slots), dtype=np.int64)
        rank[order] = np.arange(len(slots)) - np.searchsorted(slots[order], slots[order], side="left")
        positions = self.lengths[slots] + rank  # each input's position in its slot's whole sequence
        inputs[positions % self.every == 0] = BOS
        # A call may carry a slot across a restart: split it into rounds, round r holding each slot's inputs in
        # the r-th chunk this call reaches, and reset a slot before the round whose first input restarts it.
        rounds = positions // self.every - self.lengths[slots] // self.every
        rows = None
        for r in range(int(rounds.max(initial=-1)) + 1):
            chosen = np.flatnonzero(rounds == r)
            restarting = chosen[(positions[chosen] % self.every == 0) & (positions[chosen] > 0)]
            self.grower.reset(slots[restarting])
            part = self.grower.extend(slots[chosen], inputs[chosen])
            if rows is None:
                rows = np.empty((len(slots),) + part.shape[1:], dtype=part.dtype)
            rows[chosen] = part
        np.add.at(self.lengths, slots, 1)
        return rows if rows is not None else np.zeros((0, N_SYMBOLS))
