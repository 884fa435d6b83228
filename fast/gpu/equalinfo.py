"""Equal-Info windows for the gpu backend: fast.cpu's, re-exported. The coder runs on the CPU whatever the backend
(sequential integer arithmetic, bit-identical to ref); only M1's probabilities could come from the GPU (a later
step)."""
from fast.cpu.equalinfo import *  # noqa: F401,F403
from fast.cpu.equalinfo import __all__  # noqa: F401
