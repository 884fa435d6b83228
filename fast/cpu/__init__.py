"""Numba backend (to come: issue 5)."""
