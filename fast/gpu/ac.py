"""Plain AC for the gpu backend: fast.cpu's coder, re-exported. The coder is sequential integer arithmetic and runs
on the CPU whatever the backend; only M1's probabilities could come from the GPU (a later step)."""
from fast.cpu.ac import *  # noqa: F401,F403
from fast.cpu.ac import __all__  # noqa: F401
