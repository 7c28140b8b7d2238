"""Data: video readers, clip datasets, recorders and synthetic worlds."""
