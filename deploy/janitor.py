"""Removes the launcher's private socket folder when the launcher is gone, however it went.

`hume deploy` starts this beside the nodes with a pipe on its stdin whose other end only the
launcher holds. When the launcher exits (normally, on an error, or killed with SIGKILL, which no
cleanup code of its own survives) the kernel closes that end, the read below returns, and the
folder goes. The launcher's nodes stop at the same moment (PR_SET_PDEATHSIG, deploy/launcher.py).

    python -m deploy.janitor FOLDER
"""

from __future__ import annotations

import shutil
import signal
import sys


def main(folder: str) -> None:
    # Ctrl-C at a terminal reaches the whole process group: outlive it, the launcher decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
