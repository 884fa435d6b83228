"""CuPy backend, module for module the twin of ref/ and fast/cpu: transformer.py (forward, loss_and_grads
with cuBLAS products and fused numba.cuda kernels), optim.py (Adafactor, AdamW on the GPU), ac.py and equalinfo.py
(the coder, which runs on the CPU: fast.cpu's, re-exported). Helpers: device.py (CuPy or, under numba's CUDA
simulator, NumPy; host <-> device), blas.py (cuBLAS products and the float32 / TF32 / bf16 setting),
kernels_nn.py and kernels_optim.py (the kernels).

Importing any of these needs neither CuPy nor a GPU; using them without one raises fast.gpu.device.GPUUnavailable
(train.backends.load("gpu") checks first and reports it as BackendUnavailable)."""
