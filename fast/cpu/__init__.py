"""Numba backend, module for module the twin of ref/.

arithmetic.py   quantize, Encoder/Decoder, the coder's kernel API and array kernels (ref/arithmetic.py's twin)
fused.py        coding straight from float rows: quantize's rule evaluated only where the coder reads it
ac.py           plain AC; ContextTable (one CDF per context of a finite-context model)
equalinfo.py    Equal-Info windows, one stream or many in lockstep (compress_batch / decompress_batch)
exact_m1.py     M1's rows by the exact rule, and PrefixRows (the decoder's key/value cache)
transformer.py, kernels_nn.py, optim.py, kernels_optim.py   the Transformer and its optimizers
threads.py      how many threads Numba and OpenBLAS use
Coding results are bit-identical to ref (tests/test_fast_cpu_coder.py, tests/test_fast_cpu_fused.py)."""
