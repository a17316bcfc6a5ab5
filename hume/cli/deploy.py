"""`hume deploy`: not implemented yet."""

from __future__ import annotations

from collections.abc import Sequence

from hume.cli.not_implemented import refuse


def main(argv: Sequence[str]) -> int:
    return refuse("deploy", argv)
