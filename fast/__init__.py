"""Fast backends mirroring ref/ module for module: fast.cpu (Numba) and fast.gpu (CuPy). Not built yet."""
