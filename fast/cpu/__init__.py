"""Numba backend (issue 5), module for module the twin of ref/: arithmetic.py (quantize, Encoder/Decoder, array
kernels), ac.py (plain AC, context tables), equalinfo.py (Equal-Info windows, batched compress/decompress); the
Transformer and optimizers alongside. Coding results are bit-identical to ref (tests/test_fast_cpu_coder.py)."""
