"""Readable NumPy ground truth: coder, Equal-Info windows, models, metrics (see DESIGN.md)."""
