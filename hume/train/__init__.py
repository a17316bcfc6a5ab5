"""Training: System 2 flow matching, then System 1 + value-query head (Cal-QL)."""
