"""Where units of work run: in this process, in a local process pool, or on a Ray cluster -- one interface.

A unit (train/build.py ShardUnit: one shard of every dataset sharing a coder; train/repro.py M2Unit: one M2 of the
grid) is a pure function of its inputs that writes its own files and completion record, so an executor only has to
call `function(context, unit)` for every unit somewhere and hand back the results. `context` is what all units
share (the coders' specs with M1's weights, the preset): it travels once per worker and batch (with the first unit
a pool worker gets of the batch) or once per cluster (Ray's object store), not once per unit.

    executor.run(function, units, context, desc="datasets", unit="B", gpu=False) -> [result per unit, in order]

- InProcess: today's behaviour, one unit after another, on the process's own threads.
- ProcessPool(workers): concurrent.futures with the 'spawn' start method (a fresh interpreter per worker: no
  forked Numba or OpenBLAS thread pools), each worker with cores // workers threads (fast/cpu/threads.py). One pool
  serves every batch (dataset shards, then M2 runs): each batch's context reaches a worker with the first unit it
  gets of the batch, so workers start once per command. A worker that dies (killed, out of memory) breaks the pool;
  the units not finished are resubmitted to a new pool, up to `max_retries` times. GPU units run in-process: one
  machine's GPU is one worker.
- Ray(address): `ray.init()` ("auto": the cluster `ray start` made on this machine, RAY_ADDRESS, or a new local
  instance) or `ray.init(address=ADDRESS)`; each unit is a task with num_cpus=1 (num_gpus=1 when gpu), retried by
  Ray when its worker dies (max_retries). Ray is imported only here, only when asked (extra `cluster`).
Every executor shows one tqdm bar over all units, its total their weights (bytes of text for builds), so the bar
reads as throughput. Units whose completion record exists are never given to an executor (the callers skip them).
"""
import concurrent.futures
import multiprocessing
import os
import signal
import time

from tqdm import tqdm

__all__ = ["InProcess", "ProcessPool", "Ray", "make_executor", "cores"]

MAX_RETRIES = 3
KILL_GRACE = 2.0  # seconds a terminated worker gets to exit before kill() sends SIGKILL


def cores():
    """CPU cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _weight(unit):
    return getattr(unit, "weight", 1)


class _Bar:
    """One progress bar over all units, advanced by each unit's weight as it finishes."""

    def __init__(self, units, desc, unit):
        self.bar = tqdm(total=sum(_weight(u) for u in units), desc=desc, unit=unit, unit_scale=True,
                        disable=None if units else True)

    def done(self, unit):
        self.bar.update(_weight(unit))

    def close(self):
        self.bar.close()


class InProcess:
    """Units one after another in this process (the default of the library API)."""
    name, workers = "in-process", 1

    def run(self, function, units, context, desc="units", unit="unit", gpu=False):
        bar, results = _Bar(units, desc, unit), []
        try:
            for item in units:
                results.append(function(context, item))
                bar.done(item)
        finally:
            bar.close()
        return results


_CONTEXT = (None, None)  # a pool worker's (key, shared context): the batch's, sent once per worker and batch


def _start_worker(threads, setup=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    _set_threads(threads)
    if setup is not None:
        function, args = setup
        function(*args)


def _set_threads(threads):
    """Give this worker its share of the cores (both the BLAS and the Numba pools)."""
    if threads:
        from equalinfo.fast.cpu.threads import set_threads

        set_threads(threads)


class _NeedContext:
    """What a worker answers to a unit of a batch whose context it does not hold: send it again with the context."""


def _call_in_worker(function, key, unit):
    """Run one unit in a pool worker with the batch's context (`key`), if the worker holds it; a worker without it
    answers _NeedContext, and the driver resends the unit with the context (_call_with_context): the context
    travels once per worker and batch, not once per unit."""
    if _CONTEXT[0] != key:
        return _NeedContext
    return function(_CONTEXT[1], unit)


def _call_with_context(function, key, context, unit):
    """Keep `context` as this worker's (the latest only: M1's weights of a finished batch do not stay in memory)
    and run the unit."""
    global _CONTEXT
    _CONTEXT = (key, context)
    return function(context, unit)


class ProcessPool:
    """Units on `workers` local processes (started with 'spawn'), each with `threads` threads (default: its share
    of the cores, at least 1); a broken pool (a worker died) is replaced and its unfinished units rerun.

    One pool serves every batch given to run() (a repro's dataset shards, then its M2 runs): its workers are started
    once (a spawned worker imports NumPy, Numba and the package: seconds each on a busy machine) and kept until
    close() or until the executor is garbage-collected. Each batch's context reaches each worker once, with the
    first unit that worker gets of it: the batch's first `workers` units carry it, one unit is in flight per
    worker, and a worker that took none of them answers the next with _NeedContext and is sent it again with the
    context. `pools_started` and `contexts_sent` count pools and contexts sent (tests read them).

    `setup` = (function, args) runs function(*args) once in each worker as it starts: what every task of the pool
    needs, sent once per worker (the file commands' coding model). `submit` starts one call without waiting, for
    a caller that works on its own share meanwhile (filetool/workers.py)."""
    name = "process pool"

    def __init__(self, workers=None, threads=None, max_retries=MAX_RETRIES, setup=None):
        self.workers = int(workers or cores())
        self.threads = int(threads or max(1, cores() // self.workers))
        self.setup = setup  # (function, args): run once in each worker as it starts (after its threads are set)
        self.max_retries = max_retries
        self.retries = 0  # pools replaced after a worker died (tests read it)
        self.pools_started, self._pool, self._batches = 0, None, 0
        self.contexts_sent = 0  # units sent with their batch's context: about one per worker and batch (tests)

    def run(self, function, units, context, desc="units", unit="unit", gpu=False):
        if gpu or len(units) <= 1 or self.workers == 1:
            return InProcess().run(function, units, context, desc, unit)
        self._batches += 1
        key = f"{os.getpid()}.{id(self)}.{self._batches}"  # this batch's context, as the workers know it
        results, todo, bar = {}, list(range(len(units))), _Bar(units, desc, unit)
        try:
            while todo:
                todo = self._round(function, units, context, key, todo, results, bar)
                if todo:
                    self.retries += 1
                    if self.retries > self.max_retries:
                        raise RuntimeError(f"{desc}: workers died {self.retries} times; units not finished: "
                                           + ", ".join(getattr(units[i], "key", str(i)) for i in todo))
                    time.sleep(0.5)
        finally:
            bar.close()
        return [results[i] for i in range(len(units))]

    def _executor(self):
        """The pool, started on first use and kept for the next batches."""
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=spawn,
                                                                initializer=_start_worker,
                                                                initargs=(self.threads, self.setup))
            self.pools_started += 1
        return self._pool

    def submit(self, function, *args):
        """function(*args) started on a worker; returns its concurrent.futures.Future at once.

        run() blocks until a whole batch is done; a caller with its own share of the work to do meanwhile (the
        file commands: filetool/workers.py) submits the other shares with this and codes its own. No context
        protocol and no retry here: a worker that dies makes the future raise BrokenProcessPool, and the caller
        decides (kill() then stops the others)."""
        return self._executor().submit(function, *args)

    def close(self):
        """Stop the workers (they finish nothing more); the next run() starts a new pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def kill(self):
        """Stop the workers at once (a unit's error, Ctrl-C, a broken pool): SIGTERM, then SIGKILL for any worker
        still running KILL_GRACE seconds later (a worker busy in compiled code on a loaded machine was seen alive
        10 s after SIGTERM in a CI run; no worker may outlive the command)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            deadline = time.monotonic() + KILL_GRACE
            for process in processes:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(timeout=KILL_GRACE)

    def _round(self, function, units, context, key, todo, results, bar):
        """Submit `todo` (unit indices) to the pool; returns those left unfinished when a worker died (the broken
        pool is dropped: the next round starts a fresh one). On any other exception (a unit's error, Ctrl-C in this
        process) the workers are stopped at once: their files are written atomically and a unit without its record
        simply runs again next time."""
        pool, broken = self._executor(), False
        waiting, pending = list(todo), {}  # unit indices not sent yet; future -> unit index

        def send(i, with_context):
            if with_context:
                self.contexts_sent += 1
                future = pool.submit(_call_with_context, function, key, context, units[i])
            else:
                future = pool.submit(_call_in_worker, function, key, units[i])
            pending[future] = i

        try:
            for _ in range(min(self.workers, len(waiting))):  # the first unit of each worker brings the context
                send(waiting.pop(0), True)
            while pending:
                finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    try:
                        result = future.result()
                    except concurrent.futures.process.BrokenProcessPool:
                        broken = True
                        continue  # a worker died: the units without a result go round again
                    if result is _NeedContext:  # a worker that had none of the first units: it gets the context
                        send(i, True)
                        continue
                    results[i] = result
                    bar.done(units[i])
                while waiting and not broken and len(pending) < self.workers:  # one unit in flight per worker
                    send(waiting.pop(0), False)
        except concurrent.futures.process.BrokenProcessPool:
            broken = True  # raised by submit on a pool a worker has just broken
        except BaseException:
            self.kill()
            raise
        if broken:
            self.kill()
        return [i for i in todo if i not in results]


def _ray_task(function, context, unit, threads):
    _set_threads(threads)
    return function(context, unit)


class Ray:
    """Units as Ray tasks on the cluster at `address` ("auto": ray.init()'s own search, else a new local instance);
    the context goes to the object store once; a task whose worker dies is retried `max_retries` times."""
    name = "ray"

    def __init__(self, address="auto", max_retries=MAX_RETRIES, threads=1):
        try:
            import ray
        except ImportError:
            raise ValueError("--ray needs the ray package: pip install -e '.[cluster]'") from None
        self.ray, self.max_retries, self.threads = ray, max_retries, threads
        if not ray.is_initialized():
            options = {} if address == "auto" else {"address": address}
            ray.init(**options, logging_level="WARNING", log_to_driver=False)
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def run(self, function, units, context, desc="units", unit="unit", gpu=False):
        if not units:
            return []
        ray = self.ray
        shared = ray.put(context)  # once: every task reads the same copy (M1's weights) from the object store
        task = ray.remote(_ray_task).options(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=self.max_retries)
        refs = [task.remote(function, shared, item, self.threads) for item in units]
        index = {ref: i for i, ref in enumerate(refs)}
        results, pending, bar = {}, list(refs), _Bar(units, desc, unit)
        try:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                for ref in finished:
                    results[index[ref]] = ray.get(ref)
                    bar.done(units[index[ref]])
        finally:
            bar.close()
        return [results[i] for i in range(len(units))]


def make_executor(workers=None, ray=None):
    """The executor the CLI's options ask for: --ray ADDRESS|auto, else --workers N (1: in-process; default: one
    worker per core)."""
    if ray:
        return Ray(ray)
    workers = cores() if workers is None else int(workers)
    return InProcess() if workers == 1 else ProcessPool(workers)
