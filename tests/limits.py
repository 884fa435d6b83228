"""Run a piece of code under a memory and a time limit, in-process (the hardening tests and the fuzzer).

Memory: RLIMIT_AS (address space) is lowered to what the process holds now plus the allowance, so an allocation
beyond it raises MemoryError instead of growing until the kernel kills the machine's processes; the old limit is
restored afterwards. Time: an interval timer raises CaseTimeout in the main thread (between Python bytecodes, so a
single long C call finishes first). Both turn "the program went wild" into a test failure that names it.
"""
import contextlib
import resource
import signal


class CaseTimeout(Exception):
    """A case ran past its time limit."""


def address_space_bytes():
    """The process's current virtual memory size (VmSize), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def bounded(memory_mb=400, seconds=20):
    """Run the body with at most memory_mb more MB of address space and `seconds` of wall time."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = address_space_bytes() + memory_mb * (1 << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)

    def expire(signum, frame):
        raise CaseTimeout(f"ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)
