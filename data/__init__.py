"""Text sources, packing and datasets on disk."""
