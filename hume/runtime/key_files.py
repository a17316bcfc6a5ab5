"""The CURVE key folder a node is given must be safe to trust: nobody but its user may change what
it holds (a key added to authorized/ lets its owner connect; a replaced server.key misleads the
client), and nobody else may read a secret key. Nodes refuse to start otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def unsafe_key_files(folder: str | Path) -> list[str]:
    """What in a keys folder another user could change or read, as "path (why)" lines: the
    folder, authorized/ and every key file must not be writable by group or others nor owned by
    another user (but root), and secret keys not readable by them either."""
    folder = Path(folder)
    paths = [folder, folder / "authorized", *sorted(folder.glob("*.key*"))]
    if (folder / "authorized").is_dir():
        paths += sorted((folder / "authorized").iterdir())
    problems = []
    for path in paths:
        if not path.exists():
            continue
        st = path.stat()
        if st.st_uid not in (os.geteuid(), 0):
            problems.append(f"{path} (owned by uid {st.st_uid})")
        elif st.st_mode & 0o022:
            problems.append(f"{path} (writable by group or others: chmod go-w)")
        elif path.name.endswith(".key_secret") and st.st_mode & 0o077:
            problems.append(f"{path} (a secret key readable by group or others: chmod 600)")
    return problems
