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
      (M1) for all of them from ONE call on the longer prefix; the protocol makes row t depend on inputs 0..t
      only, so these rows equal the ones a decoder gets one call per symbol. They are used while the pushed
      symbols follow `upcoming`, and dropped at the first that does not (or at reset).
    Otherwise a whole-prefix model is evaluated on the whole prefix at every step, as a decoder must.
    """

    def __init__(self, model, precision=14):
        self.model = model
        self.precision = precision
        self.context_length = model.context_length
        self.cache = {}
        self.reset()

    def reset(self):
        self.inputs = [BOS]
        self.ahead = None  # (inputs the prefetched rows assume [n], their CDFs [n, V+1]) or None

    def push(self, symbol):
        self.inputs.append(int(symbol))
        if self.ahead is not None:
            assumed, cdfs = self.ahead
            if len(self.inputs) > len(cdfs) or assumed[len(self.inputs) - 1] != self.inputs[-1]:
                self.ahead = None

    def prefetch(self, upcoming):
        """Evaluate now the CDFs after each of the next len(upcoming) symbols, assuming they come in this order."""
        if self.context_length is not None:
            return  # the context cache already makes every step cheap
        assumed = self.inputs + [int(s) for s in upcoming]
        probs = self.model.next_probs(np.array([assumed], dtype=np.int64))[0]  # [len(assumed), V]
        self.ahead = (assumed, quantize(probs, self.precision))

    def cdf(self):
        if self.ahead is not None:
            return self.ahead[1][len(self.inputs) - 1]
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
    """M1: the reference Transformer (ref/transformer.py) as a coding model, with bit-reproducible rows.

    Determinism (DESIGN.md, "Determinism of M1's probabilities"): the coders quantise every row into an integer CDF,
    and the decoder, which sees a window's prefix one symbol at a time, must get exactly the rows the encoder got,
    whatever the length T or batch size B of the calls that produced them. Float arithmetic does not promise that
    across shapes (BLAS picks kernels and blockings by shape; SIMD loops treat array tails differently), so this
    model evaluates every sequence alone on ONE fixed shape, [1, sequence_length], whatever the call:
    - each input row is padded with BOS up to sequence_length positions and run through `forward`;
    - causal masking makes row t independent of the padding bit for bit: masked scores are -inf, their softmax
      weights exactly 0, and 0 * (finite value) adds exactly 0 to the weighted sum, while every other operation
      is row-wise or a matrix product whose row t reads only row t of its left operand;
    - the softmax to probabilities runs in float64 on the whole fixed-shape [sequence_length, 257] block;
    - a batch of B rows is B separate fixed-shape evaluations (a loop over sequences, not tokens).
    So a row depends only on its own prefix, the weights, this code and the machine's NumPy/BLAS build. Compressed
    files must record that backend (and `sequence_length`, which `arrays()` includes, so it is part of the model's
    fingerprint); other backends or BLAS builds may differ in the last bits and must not be trusted to decode.

    The fixed shape needs a bound on the prefix: `max_window_symbols` (the Equal-Info coders end a window at
    window_bits OR this many symbols, whichever comes first) gives sequence_length = max_window_symbols + 1. The
    default 64 suits b = 16 (windows of a trained M1 hold about 5 bytes on average, PAPER.md §3.1); for b >= 64
    choose a larger cap. Calls with T > sequence_length raise ModelError. For plain AC over long examples (no
    windows) pass max_window_symbols=None and sequence_length=example length + 1.

    Cost (bench/bench_m1_model.py, "3m" float32, cap 64, one BLAS thread, 2-core CPU): a call costs the same
    ~7.7 ms whatever T, against 1.0 / 1.9 / 3.2 / 7.2 ms at the natural shape [1, T] for T = 1 / 4 / 16 / 65, i.e.
    4-8x for the short prefixes of b = 16 windows; an Equal-Info b = 16 encode with a random-init 3m M1 (about one
    symbol per window) ran 8x slower end to end. A smaller cap shrinks the cost proportionally (it is linear in
    sequence_length) at the price of capping more windows. On the same machine the natural-shape rows differed in
    the last bits from the fixed-shape rows for 60 of 65 prefix lengths, so the fixed shape is not optional; the
    fixed-shape rows were identical with 1 and 2 BLAS threads. Multi-threaded BLAS on these small products is slow
    on a busy machine (up to 20x here): run coding with OPENBLAS_NUM_THREADS=1 (or OMP_NUM_THREADS=1).
    """

    kind = "transformer"
    context_length = None  # every row may depend on the whole prefix since the last BOS-started reset

    def __init__(self, params, cfg, max_window_symbols=64, sequence_length=None):
        from ref import transformer

        if cfg.vocab_in != N_INPUTS or cfg.vocab_out != N_SYMBOLS:
            raise ModelError(f"an M1 transformer must read {N_INPUTS} ids and predict {N_SYMBOLS}, this one reads "
                             f"{cfg.vocab_in} and predicts {cfg.vocab_out}")
        try:
            transformer.check_params(params, cfg)
        except ValueError as error:
            raise ModelError(str(error)) from None
        if max_window_symbols is not None and (not isinstance(max_window_symbols, (int, np.integer))
                                               or max_window_symbols < 1):
            raise ModelError(f"max_window_symbols must be a positive integer or None, got {max_window_symbols!r}")
        if sequence_length is None:
            if max_window_symbols is None:
                raise ModelError("give max_window_symbols or sequence_length: the fixed evaluation shape needs one")
            sequence_length = int(max_window_symbols) + 1
        if not isinstance(sequence_length, (int, np.integer)) or sequence_length < 1 or (
                max_window_symbols is not None and sequence_length < max_window_symbols + 1):
            raise ModelError(f"sequence_length must be an integer >= max_window_symbols + 1, got {sequence_length!r}")
        self.params, self.cfg = params, cfg
        self.max_window_symbols = None if max_window_symbols is None else int(max_window_symbols)
        self.sequence_length = int(sequence_length)
        self._forward = transformer.forward

    @classmethod
    def from_checkpoint(cls, path, **options):
        """Load M1 from a ref/checkpoint.py file (options as in the constructor)."""
        from ref import checkpoint

        params, cfg, _, _ = checkpoint.load(path)
        return cls(params, cfg, **options)

    def next_probs(self, inputs):
        """float64 probabilities [B, T, 257] for int inputs [B, T] (T <= sequence_length), row t after input t."""
        inputs = _check_inputs(inputs)
        batch, length = inputs.shape
        if length > self.sequence_length:
            raise ModelError(f"this M1 evaluates at most {self.sequence_length} inputs (its fixed shape), got "
                             f"{length}; raise max_window_symbols or sequence_length")
        probs = np.empty((batch, length, N_SYMBOLS), dtype=np.float64)
        padded = np.full((1, self.sequence_length), BOS, dtype=np.int64)
        for row in range(batch):
            padded[0, :length] = inputs[row]
            padded[0, length:] = BOS
            logits = self._forward(self.params, self.cfg, padded)[0].astype(np.float64)  # [L, 257]
            logits -= logits.max(axis=-1, keepdims=True)
            block = np.exp(logits)
            block /= block.sum(axis=-1, keepdims=True)
            probs[row] = block[:length]
        return probs

    def arrays(self):
        """The parameters plus what else fixes the rows: the settings the shapes do not show, and the fixed shape."""
        arrays = {"params." + name: value for name, value in self.params.items()}
        arrays.update({
            "config.n_heads": np.array(self.cfg.n_heads, dtype=np.int64),
            "config.max_distance": np.array(self.cfg.max_distance, dtype=np.int64),
            "coding.sequence_length": np.array(self.sequence_length, dtype=np.int64),
            "coding.max_window_symbols": np.array(-1 if self.max_window_symbols is None else self.max_window_symbols,
                                                  dtype=np.int64),
        })
        return arrays

    @classmethod
    def from_arrays(cls, arrays, dtype=None):
        """Inverse of `arrays()` (the config is rebuilt from the shapes and the stored settings)."""
        from ref import transformer

        try:
            params = {name[len("params."):]: value for name, value in arrays.items() if name.startswith("params.")}
            n_layers = len({name.split(".")[1] for name in params if name.startswith("blocks.")})
            cfg = transformer.Config(
                vocab_in=params["embed"].shape[0], vocab_out=params["unembed"].shape[1],
                d_model=params["embed"].shape[1], n_heads=int(arrays["config.n_heads"]), n_layers=n_layers,
                d_ff=params["blocks.0.w_gate"].shape[1], num_buckets=params["blocks.0.rel_bias"].shape[0],
                max_distance=int(arrays["config.max_distance"]), dtype=dtype or params["embed"].dtype.name)
            cap = int(arrays["coding.max_window_symbols"])
            return cls(params, cfg, None if cap < 0 else cap, int(arrays["coding.sequence_length"]))
        except (KeyError, IndexError, ValueError) as error:
            raise ModelError(f"transformer model arrays are malformed: {error}") from None
