"""Hume: a dual-system Vision-Language-Action runtime.

System 2 samples candidate action chunks and scores them with a value-query head; System 1
refines the chosen chunk by cascaded denoising at control rate.
"""

__version__ = "0.1.0"
