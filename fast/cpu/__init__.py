"""Numba backend, module for module the twin of ref/ (the same public functions, the same bits).

Twins of ref/ modules
arithmetic.py        quantize, Encoder/Decoder, the coder's kernel API and array kernels (ref/arithmetic.py's twin)
ac.py                plain AC; ContextTable (one CDF per context of a finite-context model)
equalinfo.py         Equal-Info windows: encode_windows, compress, decompress, decode_windows and their *_batch
exact_m1.py          M1's rows by exact rule 1, and PrefixRows (a decoder's key/value cache)
integer_m1.py        M1's rows by exact rule 2 (integer products through BLAS), and its PrefixRows
int8_m1.py           M1's rows by exact rule 3 (int8-valued float32 GEMMs), row-vectorized norms, its PrefixRows
int8_rows_m1.py      M1's rows by exact rule 4 (int8 rows: one GEMM per product): int8_m1.py's code with rule 4's widths
m1.py                which M1 has a key/value-cached grower (prefix_rows), and RestartingRows for restart_every
transformer.py, kernels_nn.py, optim.py, kernels_optim.py   the Transformer and its optimizers
How equalinfo.py codes (no ref twin: ref codes one window at a time)
window_rule.py       ref's window rule on one encoder state, compiled; the windows' meta columns
table_encoding.py    every window of a sequence in one compiled call, for finite-context models
lockstep.py          many streams in lockstep, one model call per step (M1)
lookahead.py         how many rows the lockstep asks per window and call (adaptive)
keeping_context.py   the Table 9 ablation (model reset every k windows): ref's rule, model calls batched
window_decoding.py   many windows decoded together, each alone
How ac.py codes a file's segments (no ref twin: ref codes them one after another)
ac_lockstep.py       plain AC over many segments in lockstep, one M1 call per step for every segment
Helpers
fused.py             coding straight from float rows: quantize's rule evaluated only where the coder reads it
threads.py           how many threads Numba and OpenBLAS use
int8_gemm.py         who computes rule 3's exact integer products: sgemm, onnxruntime (optional), or vnni_gemm.py
vnni_gemm.py         our u8 x s8 GEMM for AVX-512 VNNI CPUs, LLVM IR compiled at run time (llvmlite)
int8_step.py         a rule-3/4 grower's whole step in one compiled call, every product on vnni_gemm.py
onnx_graph.py        the one-node ONNX model int8_gemm.py runs, written as protobuf bytes (no onnx import)
Coding results are bit-identical to ref (tests/test_fast_cpu_coder.py, tests/test_fast_cpu_fused.py)."""
