"""`hume bench eval-throughput`: plain LIBERO loop vs our evaluator (local processes, Ray) on the same
episodes; JSON shape."""

import pytest
from cli_support import hume, last_json


@pytest.mark.slow
def test_smoke_run_does_the_same_episodes_every_way():
    result = last_json(hume("bench", "eval-throughput", "--smoke", "--json"))
    assert result["benchmark"] == "eval-throughput"
    for name in ("plain", "local", "ray"):
        # The hold policy never succeeds: each side runs the one episode to its 5-step limit.
        assert result[name]["episodes"] == 1 and result[name]["steps"] == 5
        assert result[name]["steps_per_s"] > 0 and result[name]["episodes_per_hour"] > 0
    assert set(result["speedup"]) == {"local", "ray"}


def test_hume_policy_without_cameras_is_refused():
    r = hume("bench", "eval-throughput", "--render=false", "--policy=hume")
    assert r.returncode == 2 and "render" in r.stderr
