"""`hume bench eval-throughput`: plain LIBERO loop vs our evaluator on the same episodes; JSON shape."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def hume(*args):
    exe = Path(sys.executable).with_name("hume")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_smoke_run_does_the_same_episodes_both_ways():
    r = hume("bench", "eval-throughput", "--smoke", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "eval-throughput"
    for name in ("plain", "evaluator"):
        # The hold policy never succeeds: each side runs the one episode to its 5-step limit.
        assert result[name]["episodes"] == 1 and result[name]["steps"] == 5
        assert result[name]["steps_per_s"] > 0 and result[name]["episodes_per_hour"] > 0
    assert result["speedup"] == pytest.approx(
        result["evaluator"]["steps_per_s"] / result["plain"]["steps_per_s"], rel=0.02
    )


def test_hume_policy_without_cameras_is_refused():
    r = hume("bench", "eval-throughput", "--render=false", "--policy=hume")
    assert r.returncode == 2 and "render" in r.stderr
