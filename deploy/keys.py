"""CURVE keys for deployments across hosts (`hume keys --output DIR`).

Layout of DIR (ZeroMQ certificate files, as zmq.auth reads them):

    server.key  server.key_secret   System 2 (binds): keep server.key_secret on its host only
    client.key  client.key_secret   System 1 (connects): keep client.key_secret on its host only
    authorized/client.key           public keys System 2 accepts; add one file per client

Copy to the System-2 host: server.key, server.key_secret, authorized/. To the System-1 host:
server.key, client.key, client.key_secret. Both nodes take the folder as --transport.keys_dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import zmq.auth


def generate_keys(folder: str | Path, force: bool = False) -> list[Path]:
    """Create a server and a client key pair; refuses to overwrite existing keys unless `force`.

    Modes are set explicitly, whatever the umask: the folders 0700 (whoever can add a file to
    authorized/ can connect), public keys 0644, secret keys 0600.
    """
    folder = Path(folder)
    names = ["server.key", "server.key_secret", "client.key", "client.key_secret"]
    existing = [folder / n for n in names if (folder / n).exists()]
    if existing and not force:
        raise FileExistsError(
            f"keys already exist in {folder} ({existing[0].name}); pass --force to replace them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    authorized = folder / "authorized"
    authorized.mkdir(exist_ok=True)
    for path in (folder, authorized):
        os.chmod(path, 0o700)
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(str(folder), name)
        os.chmod(public, 0o644)
        os.chmod(secret, 0o600)
    shutil.copy(folder / "client.key", authorized / "client.key")
    os.chmod(authorized / "client.key", 0o644)
    return [folder / n for n in names] + [authorized / "client.key"]
