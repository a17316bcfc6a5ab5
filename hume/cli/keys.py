"""`hume keys --output DIR [--force]`: generate CURVE key pairs for a deployment across hosts.

See deploy/keys.py (and docs/deployment.md) for which file goes to which host.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from hume.config import ConfigError, parse_config


@dataclasses.dataclass(frozen=True)
class KeysConfig:
    """A System-2 and a System-1 CURVE key pair, and authorized/ (client keys System 2 accepts)."""

    # The folder to write the keys to; pass it as --transport.keys_dir to both nodes.
    output: str = ""
    # Replace keys already in the folder.
    force: bool = False

    def validate(self) -> None:
        if not self.output:
            raise ConfigError("--output DIR is required: the folder to write the keys to")


def main(argv: Sequence[str]) -> int:
    cfg = parse_config(KeysConfig, argv, prog="hume keys")
    from deploy.keys import generate_keys

    try:
        paths = generate_keys(cfg.output, force=cfg.force)
    except FileExistsError as e:
        print(f"hume keys: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
