"""Where a bench's time goes: wall time per label, each part exclusive of the wrapped parts it calls.

The benches that split a coder's time (m1_rule_speed.py, int8_gemm_coders.py) wrap the functions of interest in
place (module functions, or a class's staticmethods) and restore them afterwards. cProfile would count Numba's
compiled calls too, but costs far more per call than this ~1 us wrapper.
"""
import time


class ExclusiveTimer:
    """Wall time per label, exclusive of the time of other wrapped functions called inside."""

    def __init__(self):
        self.totals, self._stack, self._saved = {}, [], []

    def wrap(self, owner, name, label, static=False):
        """Time `owner.name` (a module's function, or a class's staticmethod when `static`) under `label`."""
        if name not in owner.__dict__:  # an older checkout (PYTHONPATH) without this function: nothing to time
            return
        original = owner.__dict__[name] if static else getattr(owner, name)
        function = original.__func__ if static else original

        def timed(*args, **kwargs):
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = self._stack.pop()
                self.totals[label] = self.totals.get(label, 0.0) + elapsed - inner
                if self._stack:
                    self._stack[-1] += elapsed

        self._saved.append((owner, name, original))
        setattr(owner, name, staticmethod(timed) if static else timed)

    def restore(self):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()
