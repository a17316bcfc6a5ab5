"""The `hume` entry point, run as a real installed executable."""

import subprocess
import sys
import time
from pathlib import Path

from hume.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = {"train", "eval", "collect", "deploy", "serve", "bench", "stats"}


def hume(*args, timeout=60):
    exe = Path(sys.executable).with_name("hume")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_help_lists_every_contract_command():
    r = hume("--help")
    assert r.returncode == 0
    for name in CONTRACT:
        assert f"  {name} " in r.stdout
    assert CONTRACT <= set(COMMANDS)


def test_missing_config_fails_fast_naming_file():
    t0 = time.monotonic()
    r = hume("eval", "--config", "nonexistent.yaml")
    assert time.monotonic() - t0 < 5
    assert r.returncode != 0
    assert "nonexistent.yaml" in r.stderr


def test_unknown_command_and_bad_log_level():
    r = hume("fly")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = hume("--log-level", "LOUD", "stats", "--help")
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_every_command_has_help():
    for name in COMMANDS:
        r = hume(name, "--help")
        assert r.returncode == 0, (name, r.stderr)
        assert "usage" in r.stdout.lower(), name
