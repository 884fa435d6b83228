"""CuPy backend, module for module the twin of ref/ and fast/cpu (the same public functions, the same bits).

transformer.py      forward, loss_and_grads with cuBLAS products and fused numba.cuda kernels
optim.py            Adafactor, AdamW on the GPU
exact_m1.py         M1's rows by exact rule 1 on the GPU (fixed-order kernels), ref's bits
integer_m1.py       M1's rows by exact rule 2 on the GPU (integer products through cuBLAS), ref's bits
int8_m1.py          M1's rows by exact rule 3 on the GPU (int8-valued SGEMMs through cuBLAS), ref's bits
int8_rows_m1.py     M1's rows by exact rule 4 on the GPU (one int8-valued SGEMM per product, bf16 keys/values)
ac.py, equalinfo.py the coder, which runs on the CPU: fast.cpu's, re-exported (M1's rows come from the GPU)
Helpers: device.py (CuPy or, under numba's CUDA simulator, NumPy; host <-> device), blas.py (cuBLAS products and
the float32 / TF32 / bf16 setting), kernels_nn.py and kernels_optim.py (the kernels), probe.py (is there CuPy and a
GPU here?).

Importing any of these needs neither CuPy nor a GPU; using them without one raises fast.gpu.device.GPUUnavailable
(train.backends.load("gpu") checks first and reports it as BackendUnavailable)."""
