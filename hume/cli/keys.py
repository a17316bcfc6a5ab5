"""`hume keys --output DIR [--force]`: generate CURVE key pairs for a deployment across hosts.

See deploy/keys.py (and docs/deployment.md) for which file goes to which host.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: hume keys --output DIR [--force]

Writes a System-2 (server) and a System-1 (client) CURVE key pair to DIR, plus DIR/authorized/
holding the client public keys System 2 accepts. Use DIR as --transport.keys_dir on both nodes."""


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    force = "--force" in argv
    rest = [a for a in argv if a != "--force"]
    output = None
    if len(rest) == 2 and rest[0] == "--output":
        output = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--output="):
        output = rest[0].split("=", 1)[1]
    if not output:
        print(f"hume keys: --output DIR is required\n\n{USAGE}", file=sys.stderr)
        return 2
    from deploy.keys import generate_keys

    try:
        paths = generate_keys(output, force=force)
    except FileExistsError as e:
        print(f"hume keys: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
