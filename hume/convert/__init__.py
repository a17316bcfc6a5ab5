"""Converters from released checkpoints (the authors' Hume, pi0) to our checkpoint format."""
