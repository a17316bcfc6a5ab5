"""The networks: System 2 (VLA + action expert), value-query head, System 1, and flow math."""
