"""The model protocol every coder uses, and the two count models (unigram, order-k Markov).

The protocol every coder uses (M1 included):
- `next_probs(inputs)`: int64 ids [B, T] whose first column is BOS (257) -> float64 probabilities [B, T, 257];
  row t is the distribution of the symbol that follows input t.
- `context_length`: the number of most recent inputs a row depends on (an int), or None for "the whole prefix".
  A model with a finite context may be called on a slice of a sequence that does not start with BOS; positions
  before the slice's start then read as BOS, and the caller only uses rows whose full context is inside the slice.
- `arrays()`: dict name -> array that defines the model exactly; `ref.fingerprint.fingerprint(model.arrays())`
  identifies it in compressed files. `kind` names the class for file formats.

Every row must be a deterministic function of its own context: the decoder sees the prefix one symbol at a time and
must get bit-identical rows to the ones the encoder saw in longer calls (docs/design.md, "Determinism").

M1, the Transformer behind this protocol, is in ref/m1.py; ref/cursor.py turns any model into the coder's CDFs.
The two simple models here make the whole coding stack testable before M1 exists: a unigram model (StaticAC's
model) and an order-k Markov model, both with add-one smoothing so that every symbol, EOS included, stays codable.
"""
import numpy as np

from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS


class ModelError(ValueError):
    """A model that cannot be built or loaded (bad order, malformed arrays)."""


def check_inputs(inputs):
    """int64 copy of model inputs [B, T], or a ModelError naming what is wrong."""
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
        inputs = check_inputs(inputs)
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
        inputs = check_inputs(inputs)
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
