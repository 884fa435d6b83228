"""Models that drive the coders, and the cursor that turns a model into one integer CDF per step.

The protocol every coder uses (M1 included):
- `next_probs(inputs)`: int64 ids [B, T] whose first column is BOS (257) -> float64 probabilities [B, T, 257];
  row t is the distribution of the symbol that follows input t.
- `context_length`: the number of most recent inputs a row depends on (an int), or None for "the whole prefix".
  A model with a finite context may be called on a slice of a sequence that does not start with BOS; positions
  before the slice's start then read as BOS, and the caller only uses rows whose full context is inside the slice.
- `arrays()`: dict name -> array that defines the model exactly; `ref.fingerprint.fingerprint(model.arrays())`
  identifies it in compressed files. `kind` names the class for file formats.
- optional `max_window_symbols`: a cap on the symbols of one Equal-Info window (see ref/equalinfo.py).

Every row must be a deterministic function of its own context: the decoder sees the prefix one symbol at a time and
must get bit-identical rows to the ones the encoder saw in longer calls (DESIGN.md, "Determinism").

The two simple models here make the whole coding stack testable before M1 exists: a unigram model (StaticAC's
model) and an order-k Markov model, both with add-one smoothing so that every symbol, EOS included, stays codable.
"""
import numpy as np

from ref.arithmetic import quantize
from ref.symbols import BOS, N_INPUTS, N_SYMBOLS


class ModelError(ValueError):
    """A model that cannot be built or loaded (bad order, malformed arrays)."""


def _check_inputs(inputs):
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or not np.issubdtype(inputs.dtype, np.integer):
        raise ModelError(f"inputs must be integer ids of shape [B, T], got {inputs.dtype} {inputs.shape}")
    if inputs.size and (inputs.min() < 0 or inputs.max() >= N_INPUTS):
        raise ModelError(f"input ids must be in 0..{N_INPUTS - 1}")
    return inputs.astype(np.int64)


class UnigramModel:
    """p(s) = (count(s) + 1) / (total + 257): context-free, the model of StaticAC."""

    kind = "unigram"
    context_length = 0

    def __init__(self, counts):
        counts = np.asarray(counts)
        if counts.shape != (N_SYMBOLS,) or not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0:
            raise ModelError(f"unigram counts must be {N_SYMBOLS} non-negative integers")
        self.counts = counts.astype(np.int64)
        self.probs = (self.counts + 1) / float(self.counts.sum() + N_SYMBOLS)  # float64 [257]

    @classmethod
    def fit(cls, symbols):
        return cls(np.bincount(np.asarray(symbols, dtype=np.int64), minlength=N_SYMBOLS))

    def next_probs(self, inputs):
        inputs = _check_inputs(inputs)
        return np.broadcast_to(self.probs, inputs.shape + (N_SYMBOLS,)).copy()

    def arrays(self):
        return {"counts": self.counts}


class MarkovModel:
    """Order-k count model: p(s | last k inputs) = (count(ctx, s) + 1) / (count(ctx) + 257).

    Contexts are the k inputs ending at the current position, BOS included, so a window's first symbols are
    predicted from "start of window" contexts exactly as M1 would see them. Only contexts seen in training are
    stored (sorted context ids, one count row each); an unseen context predicts the uniform distribution.
    A context id is sum_j ctx[j] * 258^(k-1-j), which fits int64 for k <= 7.
    """

    kind = "markov"
    MAX_ORDER = 7

    def __init__(self, order, context_ids, counts):
        if not isinstance(order, (int, np.integer)) or not 1 <= order <= self.MAX_ORDER:
            raise ModelError(f"Markov order must be an integer from 1 to {self.MAX_ORDER}, got {order!r}")
        context_ids = np.asarray(context_ids)
        counts = np.asarray(counts)
        if (context_ids.ndim != 1 or counts.shape != (len(context_ids), N_SYMBOLS)
                or not np.issubdtype(context_ids.dtype, np.integer) or not np.issubdtype(counts.dtype, np.integer)
                or np.any(np.diff(context_ids) <= 0) or (counts.size and counts.min() < 0)):
            raise ModelError("Markov tables must be increasing context ids [n] and non-negative counts [n, 257]")
        self.order = int(order)
        self.context_length = self.order
        self.context_ids = context_ids.astype(np.int64)
        self.counts = counts.astype(np.int64)
        self.probs = (self.counts + 1) / (self.counts.sum(axis=1, keepdims=True) + float(N_SYMBOLS))

    @staticmethod
    def _context_ids(inputs, order):
        """Context id [B, T] of the `order` inputs ending at each position (BOS before the start)."""
        batch, length = inputs.shape
        padded = np.concatenate([np.full((batch, order - 1), BOS, dtype=np.int64), inputs], axis=1)
        ids = np.zeros((batch, length), dtype=np.int64)
        for j in range(order):
            ids = ids * N_INPUTS + padded[:, j:j + length]
        return ids

    @classmethod
    def fit(cls, symbols, order=2):
        """Counts of a symbol sequence, with every position also counted as the start of a sequence.

        A coder resets the context to BOS at every Equal-Info window, so contexts that begin with BOS must be
        learned too: the symbol after j window symbols (j < order) is counted under (BOS, ..., BOS, last j
        symbols) as well as under its ordinary context. Without this, a model fitted on one long stream has seen
        its start-of-window contexts once and codes every window's first symbols at about 8 bits each.
        """
        symbols = np.asarray(symbols, dtype=np.int64)
        n = len(symbols)
        history = np.concatenate([np.full(order, BOS, dtype=np.int64), symbols])  # history[order + t] = x_t
        contexts = []
        for kept in range(order, -1, -1):  # real symbols the context keeps; kept = order is the ordinary context
            ids = np.zeros(n, dtype=np.int64)
            for back in range(order, 0, -1):  # the context entry `back` positions before the target
                entry = history[order - back:order - back + n] if back <= kept else BOS
                ids = ids * N_INPUTS + entry
            contexts.append(ids)
        contexts, targets = np.concatenate(contexts), np.tile(symbols, order + 1)
        context_ids, rows = np.unique(contexts, return_inverse=True)
        counts = np.zeros((len(context_ids), N_SYMBOLS), dtype=np.int64)
        np.add.at(counts, (rows, targets), 1)
        return cls(order, context_ids, counts)

    def next_probs(self, inputs):
        inputs = _check_inputs(inputs)
        contexts = self._context_ids(inputs, self.order)
        rows = np.searchsorted(self.context_ids, contexts)
        rows = np.minimum(rows, max(len(self.context_ids) - 1, 0))
        seen = (self.context_ids[rows] == contexts) if len(self.context_ids) else np.zeros(contexts.shape, bool)
        probs = np.full(inputs.shape + (N_SYMBOLS,), 1.0 / N_SYMBOLS)
        probs[seen] = self.probs[rows[seen]]
        return probs

    def arrays(self):
        return {"order": np.array(self.order, dtype=np.int64), "context_ids": self.context_ids,
                "counts": self.counts}


def model_from_arrays(kind, arrays):
    """Rebuild a model from its kind and arrays (as stored in a compressed file or a model file)."""
    try:
        if kind == UnigramModel.kind:
            return UnigramModel(arrays["counts"])
        if kind == MarkovModel.kind:
            return MarkovModel(int(arrays["order"]), arrays["context_ids"], arrays["counts"])
        if kind == TransformerModel.kind:
            return TransformerModel.from_arrays(arrays)
    except KeyError as missing:
        raise ModelError(f"{kind} model is missing its array {missing}") from None
    raise ModelError(f"unknown model kind {kind!r}")


class CdfCursor:
    """Walks a sequence one symbol at a time and hands the coder the quantized CDF of the next symbol.

    reset() starts a new sequence (input BOS); cdf() is the next symbol's CDF; push(symbol) appends it.
    Two shortcuts, neither of which can change a result:
    - a finite-context model's CDFs are cached by context, so each distinct context is evaluated and quantized once
      (a row of such a model depends on its context only);
    - prefetch(upcoming) lets an encoder, which knows the symbols to come, get the rows of a whole-prefix model
      (M1) for many of them from ONE call on a longer prefix; the protocol makes row t depend on inputs 0..t
      only, so these rows equal the ones a decoder gets one call per symbol. The rows are evaluated lazily, for
      the first PREFETCH_ROWS symbols and then for twice as many each time the pushed symbols run past them (a
      window rarely uses all of `upcoming`), and dropped at the first pushed symbol that does not follow
      `upcoming` (or at reset).
    Otherwise a whole-prefix model is evaluated on the whole prefix at every step, as a decoder must.
    """

    PREFETCH_ROWS = 16

    def __init__(self, model, precision=14):
        self.model = model
        self.precision = precision
        self.context_length = model.context_length
        self.cache = {}
        self.reset()

    def reset(self):
        self.inputs = [BOS]
        self.assumed = None  # the inputs prefetch() announced, while the pushed ones follow them
        self.ahead = None  # CDFs [n, V+1] of the rows after assumed[:1], ..., assumed[:n]

    def push(self, symbol):
        self.inputs.append(int(symbol))
        if self.assumed is not None and (len(self.inputs) > len(self.assumed)
                                         or self.assumed[len(self.inputs) - 1] != self.inputs[-1]):
            self.assumed = self.ahead = None

    def prefetch(self, upcoming):
        """Announce the next symbols (in this order) so that their rows come from few calls on longer prefixes."""
        if self.context_length is not None:
            return  # the context cache already makes every step cheap
        self.assumed = self.inputs + [int(s) for s in upcoming]
        self.ahead = None

    def _prefetched(self):
        """The CDF after the current inputs from the announced prefix's rows, or None if none was announced."""
        if self.assumed is None:
            return None
        needed = len(self.inputs)
        if self.ahead is None or len(self.ahead) < needed:
            size = max(self.PREFETCH_ROWS, 2 * (0 if self.ahead is None else len(self.ahead)), needed)
            prefix = np.array([self.assumed[:size]], dtype=np.int64)
            self.ahead = quantize(self.model.next_probs(prefix)[0], self.precision)  # [size, V+1]
        return self.ahead[needed - 1]

    def cdf(self):
        ahead = self._prefetched()
        if ahead is not None:
            return ahead
        if self.context_length is None:
            return self._evaluate(self.inputs)
        width = self.context_length
        recent = tuple(self.inputs[-width:]) if width else ()
        key = (BOS,) * (width - len(recent)) + recent  # before the start, inputs read as BOS
        if key not in self.cache:
            self.cache[key] = self._evaluate(list(key) if key else [BOS])
        return self.cache[key]

    def _evaluate(self, inputs):
        probs = self.model.next_probs(np.array([inputs], dtype=np.int64))[0, -1]
        return quantize(probs, self.precision)


class TransformerModel:
    """M1: a Transformer (ref/transformer.py's parameters) as a coding model, with bit-reproducible rows.

    Determinism (DESIGN.md, "Determinism of M1's probabilities"): the coders quantise every row into an integer CDF,
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

    `max_window_symbols` optionally caps the symbols of one Equal-Info window (the window then ends at window_bits
    or at the cap, whichever comes first; ref/equalinfo.py); it changes the windows, so it is part of `arrays()` too.
    With exact rows there is no fixed evaluation shape, so no cap is needed for determinism (default: none).
    """

    kind = "transformer"
    context_length = None  # every row may depend on the whole prefix since the last BOS-started reset

    def __init__(self, params, cfg, max_window_symbols=None, rows=None, prefix_rows=None, rule=1):
        from ref.exact_rules import known_versions, rule_module

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
        if max_window_symbols is not None and (not isinstance(max_window_symbols, (int, np.integer))
                                               or isinstance(max_window_symbols, bool) or max_window_symbols < 1):
            raise ModelError(f"max_window_symbols must be a positive integer or None, got {max_window_symbols!r}")
        self.params, self.cfg, self.rule = params, cfg, int(rule)
        self.max_window_symbols = None if max_window_symbols is None else int(max_window_symbols)
        self._rows = module.next_probs if rows is None else rows
        self._prefix_rows = prefix_rows  # optional: a class like fast.cpu.exact_m1.PrefixRows, for decoders

    @classmethod
    def from_checkpoint(cls, path, **options):
        """Load M1 from a ref/checkpoint.py file (options as in the constructor)."""
        from ref import checkpoint

        params, cfg, _, _ = checkpoint.load(path)
        return cls(params, cfg, **options)

    def next_probs(self, inputs):
        """float64 probabilities [B, T, 257] for int inputs [B, T]; row t depends on inputs[b, :t+1] alone."""
        return self._rows(self.params, self.cfg, _check_inputs(inputs))

    def prefix_rows(self, n_slots):
        """A grower of n_slots prefixes, one input at a time with cached keys/values (its `extend(slots, inputs)`
        gives the rows next_probs would), or None if this model's rows come without one."""
        return None if self._prefix_rows is None else self._prefix_rows(self.params, self.cfg, n_slots)

    def arrays(self):
        """The parameters plus what else fixes the rows and windows: unshaped settings, the cap, the rule's version."""
        arrays = {"params." + name: value for name, value in self.params.items()}
        arrays.update({
            "config.n_heads": np.array(self.cfg.n_heads, dtype=np.int64),
            "config.max_distance": np.array(self.cfg.max_distance, dtype=np.int64),
            "coding.exact_m1_version": np.array(self.rule, dtype=np.int64),
            "coding.max_window_symbols": np.array(-1 if self.max_window_symbols is None else self.max_window_symbols,
                                                  dtype=np.int64),
        })
        return arrays

    @classmethod
    def from_arrays(cls, arrays, dtype=None, rows=None):
        """Inverse of `arrays()` (the config is rebuilt from the shapes and the stored settings)."""
        from ref import transformer

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
            return cls(params, cfg, None if cap < 0 else cap, rows, rule=version)
        except ModelError:
            raise
        except (KeyError, IndexError, ValueError) as error:
            raise ModelError(f"transformer model arrays are malformed: {error}") from None
