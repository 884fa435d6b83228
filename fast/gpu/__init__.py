"""CuPy backend (to come: issue 6)."""
