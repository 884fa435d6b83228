"""Fast backends mirroring ref/ module for module, with ref's interfaces and ref's coding bits.

fast.cpu   Numba on the CPU: the coder, Equal-Info windows, M1's exact rows, the Transformer and optimizers
fast.gpu   CuPy + numba.cuda on one GPU: the Transformer, optimizers and M1's exact rows; the coder is fast.cpu's
train.backends picks one by name ("ref", "cpu", "gpu").
"""
