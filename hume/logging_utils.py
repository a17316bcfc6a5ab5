"""One logging setup for every command and node process."""

from __future__ import annotations

import logging

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setup_logging(level: str = "INFO") -> None:
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LEVELS)}, got {level!r}")
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname).1s %(process)d %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
