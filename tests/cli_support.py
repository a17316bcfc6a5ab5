"""The `hume` command of this environment, run from tests as a user runs it (repository root)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HUME = str(Path(sys.executable).with_name("hume"))


def hume(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([HUME, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def last_json(r: subprocess.CompletedProcess) -> dict:
    """The JSON object a successful `--json` run prints on its last line."""
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
