"""The coders' view of a model: one quantized integer CDF per step (ref/models.py has the model protocol)."""
import numpy as np

from equalinfo.ref.arithmetic import quantize
from equalinfo.ref.symbols import BOS


class CdfCursor:
    """Walks a sequence one symbol at a time and hands the coder the quantized CDF of the next symbol.

    reset() starts a new sequence (input BOS); cdf() is the next symbol's CDF; push(symbol) appends it; rewind(n)
    forgets the inputs after the first n (an encoder that tried symbols past a window's end).
    Two shortcuts, neither of which can change a result:
    - a finite-context model's CDFs are cached by context, so each distinct context is evaluated and quantized once
      (a row of such a model depends on its context only);
    - prefetch(upcoming) lets an encoder, which knows the symbols to come, get the rows of a whole-prefix model
      (M1) for many of them from few calls on longer prefixes; the protocol makes row t depend on inputs 0..t
      only, so these rows equal the ones a decoder gets one call per symbol. The rows are evaluated lazily, for
      the first PREFETCH_ROWS symbols and then for twice as many each time the pushed symbols run past them (a
      window rarely uses all of `upcoming`), and dropped at the first pushed symbol that does not follow
      `upcoming`, at reset, or at an announcement that disagrees with the inputs they were made from.
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

    def rewind(self, n_inputs):
        """Forget the inputs after the first n_inputs (BOS counts); rows prefetched for them stay valid."""
        if not 1 <= n_inputs <= len(self.inputs):
            raise ValueError(f"cannot rewind {len(self.inputs)} inputs to {n_inputs}")
        del self.inputs[n_inputs:]

    def prefetch(self, upcoming):
        """Announce the next symbols (in this order) so that their rows come from few calls on longer prefixes.

        Rows already in hand are kept when the new announcement agrees with the inputs they were made from: a coder
        that does not reset the model between windows (ref/equalinfo.py's model_reset_every) announces each window
        from where the last one ended, and re-evaluating the whole prefix at every window would cost O(n^2)."""
        if self.context_length is not None:
            return  # the context cache already makes every step cheap
        assumed = self.inputs + [int(s) for s in upcoming]
        kept = 0 if self.ahead is None else len(self.ahead)
        if not (kept and len(assumed) >= kept and assumed[:kept] == self.assumed[:kept]):
            self.ahead = None
        self.assumed = assumed

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
