"""A file's segments coded by several processes at once: `--workers N` of compress and decompress.

A version 3 file codes its input as independent segments (filetool/segments.py), and the lockstep coders give
every segment the same bits whatever batch it is coded in (each segment's rows depend on its own prefix alone).
So the segments can be cut into `workers` contiguous groups, balanced by their bytes, and each group coded by
another process: the file's bytes are the same for any number of workers (tests/test_file_workers.py).

Why processes and not threads: one process uses about one core well. A second thread in the same process adds
0-30% to M1's coders, where a second process nearly doubles them (1.7-1.9x; bench/README.md, "Round 3").

How: `SegmentPool(workers, coder_model, backend)` starts workers - 1 processes (train/executors.ProcessPool:
'spawn', each with cores // workers threads; this process gets the same share while the pool is open). Each
worker rebuilds the coding model once, when it starts, from the model's arrays (sent by the pool's `setup`, as
pickled IPC: files are never read with pickle). For every batch of segments, this process submits all groups but
the first, codes the first itself (no start-up to wait for, and its progress bar moves), then collects the
others' results in segment order. The streaming coder keeps one pool for all of its batches.

Failures: a worker's ValueError (a corrupt segment) reaches the caller as a ValueError; a worker that dies (killed,
out of memory) raises WorkerDied naming it, never a hang; any error or Ctrl-C here stops the workers at once
(they ignore SIGINT themselves, so the terminal's Ctrl-C reaches this process only, which kills them).

`workers="auto"` (the CLI's default): more than one process only where it pays, see `auto_workers`.
"""
import concurrent.futures
from contextlib import nullcontext

import numpy as np

from equalinfo.train.executors import ProcessPool, cores

AUTO = "auto"
MAX_WORKERS = 64  # options.py's --workers bound: more processes than any machine here has cores is a mistake
# auto: an M1 on fast.cpu uses the other cores from this many input bytes on. A worker's start-up (spawn, imports,
# the model; then Numba's cache and onnxruntime's sessions on its first call) costs ~2 s of a core on the dev
# machine, ~0.5 s of it beyond what one process pays anyway (bench/README.md, "Round 4"). Measured there with the
# shipped M1, 1 -> 2 processes: 32 KiB loses both ways, 64 KiB compresses in the same time and decompresses 1.24x
# faster, 96 KiB compresses 1.32x faster.
AUTO_MIN_BYTES = 64 * 1024


class WorkerDied(RuntimeError):
    """A worker process ended without an answer (killed, out of memory): the file was not coded."""


def check_workers(workers):
    """`workers` if it is a positive int (up to MAX_WORKERS) or "auto", else ValueError naming it."""
    if workers == AUTO:
        return workers
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer from 1 to {MAX_WORKERS} or {AUTO!r}, got {workers!r}")
    return int(workers)


def auto_workers(model, backend, n_bytes):
    """How many processes `workers="auto"` gives: all cores for an M1 (a model, or its kind as a file's header
    names it) on fast.cpu with at least AUTO_MIN_BYTES of input, else 1. The Markov, unigram and stored models
    code at hundreds of KB/s or more, where a worker's seconds of start-up cost more than they could save; ref is
    for checking, not speed."""
    kind = model if isinstance(model, str) else getattr(model, "kind", None)
    if kind == "transformer" and getattr(backend, "name", None) == "cpu" and n_bytes >= AUTO_MIN_BYTES:
        return cores()
    return 1


def resolve_workers(workers, model, backend, n_bytes, segment_bytes=None):
    """The number of processes for coding n_bytes with this model and backend (`workers` checked; "auto" worked
    out by auto_workers), never more than the input's segments of segment_bytes (if given): a process without a
    segment would only take a share of the cores from one that has some."""
    workers = check_workers(workers)
    workers = auto_workers(model, backend, n_bytes) if workers == AUTO else workers
    return workers if segment_bytes is None else max(1, min(workers, -(-n_bytes // segment_bytes)))


def balanced_groups(lengths, groups):
    """[(start, stop)] cutting the segments of these byte lengths into at most `groups` contiguous, non-empty
    groups of about equal bytes (the coders' time grows with bytes, not with segments).

    Each cut is placed at the segment boundary nearest to k/groups of the bytes, and never leaves a group empty."""
    n = len(lengths)
    if n == 0:
        return []
    groups = max(1, min(int(groups), n))
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))  # bytes up to the end of each segment
    total = int(ends[-1])
    cuts = [0]
    for k in range(1, groups):
        target = total * k / groups
        after = int(np.searchsorted(ends, target))  # the first segment that reaches the target
        before = int(ends[after - 1]) if after else 0  # bytes before that segment
        cut = after + 1 if after < n and ends[after] - target <= target - before else after  # the nearer end
        cuts.append(min(max(cut, cuts[-1] + 1), n - (groups - k)))  # non-empty groups on both sides
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


# ----------------------------------------------------------------------------------------- in a worker process

_HELD = {}  # this worker's coding model and backend, set once when it starts (hold_model)


def hold_model(kind, arrays, backend_name):
    """A worker's setup: rebuild the coding model from its arrays on the backend, once, for every task. A failure is
    kept and reported by each task (code_group) rather than raised here: an error in a pool's initializer only
    breaks the pool, which the driver cannot tell from a worker killed or out of memory."""
    from equalinfo.ref.stored_models import model_from_arrays
    from equalinfo.train import backends

    _HELD.clear()
    try:
        model = model_from_arrays(kind, arrays)
        if kind == "transformer":  # M1 on the backend's twin of its rule, as codec.on_backend does
            from equalinfo.train import m1

            model = m1.on_backend(model, backend_name)
        _HELD.update(model=model, backend=backends.load(backend_name))
    except Exception as error:  # whatever the reason, its message reaches the driver with the first task
        _HELD.update(setup_error=f"{type(error).__name__}: {error}")


def code_group(task, segments, lengths, coding):
    """In a worker: run_task on a group with the model this worker holds. A coder's error comes back as a plain
    ValueError (its own class may not survive pickling), as does a failed setup."""
    if "setup_error" in _HELD:
        raise ValueError(f"a worker process could not rebuild the model: {_HELD['setup_error']}")
    try:
        return run_task(task, segments, lengths, coding, _HELD["model"], _HELD["backend"])
    except ValueError as error:
        raise ValueError(str(error)) from None


def run_task(task, segments, lengths, coding, model, backend, progress=None):
    """One process's share: "code" -> [bits] of symbol arrays; "decode" -> [symbols] of bit arrays decoded to
    `lengths`; coding = (method, window_bits, precision); as codec codes a batch in one process."""
    method, window_bits, precision = coding
    if task == "code":
        return code_here(segments, method, window_bits, precision, model, backend, progress)
    return decode_here(segments, lengths, method, window_bits, precision, model, backend, progress)


def code_here(pieces, method, window_bits, precision, coder_model, backend, progress=None):
    """code_segments's work in one process: every segment in one batch of the backend's coder. progress(n), if
    given, gets the symbols of these pieces coded so far."""
    if method == "equalinfo":
        bits = backend.equalinfo.compress_batch(pieces, coder_model, window_bits, precision)
        if progress is not None:
            progress(sum(len(piece) for piece in pieces))
    else:
        bits = backend.ac.compress_batch(pieces, coder_model, precision, progress)
    return [np.asarray(b, dtype=np.uint8).reshape(-1) for b in bits]


def decode_here(bit_arrays, lengths, method, window_bits, precision, coder_model, backend, progress=None):
    """decode_segments's work in one process: every segment in one batch of the backend's decoder."""
    if method == "equalinfo":
        pieces = backend.equalinfo.decompress_batch(bit_arrays, coder_model, window_bits, precision,
                                                    n_symbols=list(lengths))
        if progress is not None:
            progress(sum(lengths))
        return pieces
    return backend.ac.decompress_batch(bit_arrays, coder_model, list(lengths), precision, progress)


# ---------------------------------------------------------------------------------------------- in the driver

class SegmentPool:
    """workers - 1 processes holding the coding model, plus this one: `code` and `decode` split each batch of
    segments among them. Use it as a context manager (or call close()); an error inside stops the workers."""

    def __init__(self, workers, coder_model, backend):
        self.workers = check_workers(workers)  # those of a batch with fewer segments than workers stay idle
        if self.workers == AUTO:
            raise ValueError("SegmentPool needs a number of workers; resolve 'auto' first (resolve_workers)")
        kind = getattr(coder_model, "kind", None)
        if self.workers > 1 and kind not in ("unigram", "markov", "transformer"):
            raise ValueError(f"workers > 1 need a model that can be stored (unigram, markov or an M1), not {kind!r}")
        self.model, self.backend = coder_model, backend
        self.threads = max(1, cores() // self.workers)
        self.pool, self._threads_before = None, None
        if self.workers > 1:
            setup = (hold_model, (kind, coder_model.arrays(), backend.name))
            self.pool = ProcessPool(self.workers - 1, threads=self.threads, setup=setup)
            self._threads_before = _share_cores(self.threads)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if error is None:
            self.close()
        else:
            self.kill()

    def code(self, pieces, coding, progress=None, done=0):
        """[bits] of each segment's symbols, in order (code_here's, split among the processes)."""
        return self._split("code", pieces, [len(p) for p in pieces], coding, progress, done)

    def decode(self, bit_arrays, lengths, coding, progress=None, done=0):
        """[symbols] of each segment's bits decoded to its length, in order (decode_here's, split)."""
        return self._split("decode", bit_arrays, list(lengths), coding, progress, done)

    def _split(self, task, segments, lengths, coding, progress, done):
        """Submit every group but the first to the workers, code the first here, then gather in segment order."""
        groups = balanced_groups(lengths, self.workers)
        if self.pool is None or len(groups) <= 1:
            shifted = None if progress is None else (lambda n: progress(done + n))
            return run_task(task, segments, lengths, coding, self.model, self.backend, shifted)
        (first, stop), others = groups[0], groups[1:]
        own_progress = _scaled(progress, done, sum(lengths[first:stop]), sum(lengths))
        try:
            futures = [self.pool.submit(code_group, task, segments[a:b], lengths[a:b], coding) for a, b in others]
            results = list(run_task(task, segments[first:stop], lengths[first:stop], coding, self.model,
                                    self.backend, own_progress))
            for future in futures:
                results.extend(future.result())
        except concurrent.futures.process.BrokenProcessPool:
            self.kill()
            raise WorkerDied(f"a worker process coding segments {others[0][0]}-{others[-1][1] - 1} of this batch "
                             "died (killed or out of memory); nothing was written: rerun, or use --workers 1"
                             ) from None
        except BaseException:  # a coder's error here or in a worker, Ctrl-C: no worker is left running
            self.kill()
            raise
        if progress is not None:
            progress(done + sum(lengths))
        return results

    def close(self):
        """Let the workers finish and exit; give this process its threads back."""
        if self.pool is not None:
            self.pool.close()
        self._restore_threads()

    def kill(self):
        """Stop the workers at once (an error, Ctrl-C); give this process its threads back."""
        if self.pool is not None:
            self.pool.kill()
        self._restore_threads()

    def _restore_threads(self):
        if self._threads_before is not None:
            from equalinfo.fast.cpu.threads import set_threads

            set_threads(self._threads_before)
            self._threads_before = None


def pool_for(workers, coder_model, backend):
    """A context manager yielding a SegmentPool: `workers` itself if it is one (a stream's pool, kept open by its
    owner), else a new pool of that many processes, closed at the end."""
    if isinstance(workers, SegmentPool):
        return nullcontext(workers)
    return SegmentPool(workers, coder_model, backend)


def _share_cores(threads):
    """Set this process's thread pools to `threads` (its share beside the workers); returns the count before."""
    import numba

    from equalinfo.fast.cpu.threads import set_threads

    before = numba.get_num_threads()
    set_threads(threads)
    return before


def _scaled(progress, done, own_symbols, all_symbols):
    """progress of this process's own group, scaled to the whole batch: the workers' groups move at about the
    same speed, and their progress does not cross the process boundary."""
    if progress is None:
        return None
    scale = all_symbols / own_symbols if own_symbols else 1.0
    return lambda n: progress(done + min(int(n * scale), all_symbols))
