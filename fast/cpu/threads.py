"""One thread count for the CPU backend's two thread pools: NumPy's OpenBLAS (matrix products) and Numba's (kernels).

fast.cpu's training step alternates BLAS products with Numba kernels, so the two pools take turns. What made two
threads slower than one (bench/README.md, "Backends and speed") is how each pool waits between its jobs: OpenBLAS's idle
workers spin (with sched_yield) for 2^28 cycles, about a tenth of a second, after every product, so the Numba kernel
that follows finds its second core busy with a spinning BLAS thread. On a 2-core machine the two pools then fight
for the cores instead of taking turns. OpenBLAS reads how long to spin from OPENBLAS_THREAD_TIMEOUT (an exponent:
2^n cycles, 4 to 30), once, when the library loads; 4 makes an idle worker go to sleep at once, and waking it for
the next product costs microseconds. Numba's OpenMP pool spins only briefly by default and needs nothing.

Use:
- `quiet_idle_blas_threads()` before NumPy is first imported (the `equalinfo` CLI and bench/train_speed.py call it
  at their top). Imported afterwards, it cannot change the loaded OpenBLAS and says so by returning False.
- `set_threads(n)`: both pools to n threads at run time (`--threads N` of the CLI commands). OpenBLAS has no
  Python API in NumPy; its `openblas_set_num_threads` is called through ctypes on the copy NumPy loaded.
- `one_thread_below(work, threshold)`: the Numba kernels inside run on one thread when the work is small.
Neither touches the coder (it uses no BLAS). fast.cpu's Numba kernels compute the same values whatever the thread
count; OpenBLAS may split a product differently, which could change float32 rounding (on the dev machine a step's
loss and gradients came out identical with 1 and 2 threads; tests/test_fast_cpu_transformer.py checks them close).
"""
import contextlib
import ctypes
import os
import sys

__all__ = ["quiet_idle_blas_threads", "set_threads", "blas_threads", "one_thread_below", "IDLE_SPIN_EXPONENT"]

IDLE_SPIN_EXPONENT = 4  # OpenBLAS's THREAD_TIMEOUT: idle workers spin 2^4 cycles, then sleep (its default: 2^28)
_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def quiet_idle_blas_threads():
    """Ask OpenBLAS's idle workers to sleep instead of spinning (unless OPENBLAS_THREAD_TIMEOUT is set already).

    Returns True if NumPy is not loaded yet, so that the setting takes effect; False if it came too late.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(IDLE_SPIN_EXPONENT))
    return "numpy" not in sys.modules


def _openblas():
    """The OpenBLAS library this process loaded (NumPy's copy), or None: found by name among the mapped files."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:  # not Linux
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)  # already loaded: the same copy, not a second one
        except OSError:
            continue
    return None


def _function(library, names):
    for name in names:
        function = getattr(library, name, None) if library is not None else None
        if function is not None:
            return function
    return None


def blas_threads():
    """OpenBLAS's current thread count, or None if NumPy's BLAS is not an OpenBLAS found here."""
    import numpy  # noqa: F401 (loads OpenBLAS)

    getter = _function(_openblas(), _GETTERS)
    return int(getter()) if getter is not None else None


def set_threads(n):
    """Run Numba's kernels and OpenBLAS's products on n threads each (they take turns, so n = the cores to use).

    n may not exceed Numba's pool (NUMBA_NUM_THREADS, by default the number of cores): ValueError. Returns the
    OpenBLAS thread count now in effect, or None if no OpenBLAS was found (then only Numba's pool is set).
    """
    import numba

    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"--threads must be 1 to {numba.config.NUMBA_NUM_THREADS} (the cores Numba's pool has), "
                         f"got {n}")
    numba.set_num_threads(n)
    import numpy  # noqa: F401 (loads OpenBLAS)

    library = _openblas()
    setter = _function(library, _SETTERS)
    if setter is None:
        return None
    setter(ctypes.c_int(n))
    return blas_threads()


@contextlib.contextmanager
def one_thread_below(work, threshold):
    """Run the Numba kernels inside on one thread when `work` (elements, multiply-adds: the caller's unit) is below
    `threshold`; otherwise on the pool's threads.

    Waking the thread pool costs microseconds on an idle machine, but on a busy one every parallel kernel waits for
    its slowest thread to be scheduled (milliseconds): for small work that wait is all the kernel costs. fast.cpu's
    kernels compute the same values whatever the thread count, so only their speed depends on this.
    """
    import numba

    before = numba.get_num_threads()
    if work >= threshold or before == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
