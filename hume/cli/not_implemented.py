"""Placeholder for commands whose implementation has not landed: they say so and fail."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hume.config import check_config_file, split_config_arg


def refuse(command: str, argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: hume {command} [--config FILE.yaml] [--key=value ...]\n\n(not implemented yet)")
        return 0
    path, _ = split_config_arg(argv)
    check_config_file(path)
    print(f"hume {command}: not implemented yet", file=sys.stderr)
    return 3
