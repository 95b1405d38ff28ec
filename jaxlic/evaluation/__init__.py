"""Rate-distortion evaluation with real files."""
