"""Plain AC for the gpu backend: fast.cpu's coder, re-exported.

The coder is a sequential integer loop (each symbol narrows the interval the previous one left) and runs on the
CPU whatever the backend. With M1 as the model, the rows it codes with come from the GPU
(fast.gpu.exact_m1.next_probs via train.m1.coding_model(..., 'gpu')), bit-identical to the CPU's, so the bits do not
depend on where the rows were computed (fast/gpu/equalinfo.py says more). compress_batch/decompress_batch are
fast.cpu's too: with GPU rows (no key/value-cached grower) the lockstep decoder asks next_probs for every running
segment's prefix in one call per step (fast/cpu/ac_lockstep.py).
"""
from equalinfo.fast.cpu.ac import *  # noqa: F401,F403
from equalinfo.fast.cpu.ac import __all__  # noqa: F401
