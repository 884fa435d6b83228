"""Equal-Info windows for the gpu backend: fast.cpu's coder, re-exported; M1's rows come from the GPU.

What runs where. `compress_batch` / `decompress_batch` advance thousands of streams in lockstep: each step makes ONE
model call for every active window, then advances every stream's coder in one compiled CPU call. With the gpu
backend that model call is fast.gpu.exact_m1.next_probs (train.m1.coding_model(..., 'gpu') makes it the coding
model's `rows`): M1's forward pass on the GPU, by the exact rule, bit-identical to ref and fast.cpu, so a file
compressed with GPU rows decodes with CPU rows and back. The coder stays on the CPU: it is a sequential integer loop per stream (each
symbol's interval depends on the previous one; a window's end depends on every symbol in it), with nothing for a
GPU's thousands of threads to share but the per-stream parallelism the lockstep batch already exposes, and it is
a small part of the time next to M1 (bench/gpu_equalinfo_speed.py prints the split).
"""
from equalinfo.fast.cpu.equalinfo import *  # noqa: F401,F403
from equalinfo.fast.cpu.equalinfo import __all__  # noqa: F401
