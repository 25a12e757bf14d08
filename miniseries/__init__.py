"""miniseries: compute-optimal GPT families whose results are known before training."""

__version__ = "0.1.0"
