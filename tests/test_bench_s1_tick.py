"""`hume bench s1-tick`: the System-1 node's tick through the real node, JSON shape (never timings)."""

import json

import pytest
import torch
from cli_support import hume, last_json


@pytest.mark.slow
def test_smoke_run_times_every_tick_with_the_cascade(tmp_path):
    result = last_json(hume("bench", "s1-tick", "--smoke", "--json", f"--output={tmp_path}"))
    assert result["benchmark"] == "s1-tick" and result["size"] == "tiny" and result["device"] == "cpu"
    assert result["ticks"] == 50
    # System 1's worker refined ahead of the ticks (new plans taking over); none held.
    assert result["refined_ticks"] > 0 and result["hold_ticks"] == 0
    t = result["tick_ms"]
    assert 0 < t["p50"] <= t["p99"] <= t["max"]
    assert 0 < result["refine_cpu_ms"]["p50"] <= result["refine_cpu_ms"]["p99"]
    assert result["system1_params"] > 0
    assert json.loads((tmp_path / "s1-tick.json").read_text()) == result


def test_full_size_runs_on_cuda_or_says_why_not():
    # What the machine has decides what must happen, not what the benchmark reports.
    result = last_json(hume("bench", "s1-tick", "--size=full", "--ticks=5", "--warmup=1", "--json"))
    if torch.cuda.is_available():
        assert "skipped" not in result and result["device"] not in ("cpu", "none")
        assert result["ticks"] == 5 and result["refined_ticks"] >= 1 and result["tick_ms"]["p50"] > 0
    else:
        assert result["device"] == "none" and "CUDA" in result["skipped"] and "ticks" not in result


def test_bad_options_are_config_errors():
    r = hume("bench", "s1-tick", "--size=huge")
    assert r.returncode == 2 and "huge" in r.stderr
    r = hume("bench", "s1-tick", "--compile=fastest")
    assert r.returncode == 2 and "compile" in r.stderr


@pytest.mark.slow
def test_eager_and_fast_paths_side_by_side_on_a_checkpoint():
    result = last_json(
        hume(
            "bench",
            "s1-tick",
            "--smoke",
            "--json",
            "--checkpoint=checkpoints/default",
            "--paths=[eager,fast]",
        )
    )
    assert result["checkpoint"] == "checkpoints/default" and list(result["paths"]) == ["eager", "fast"]
    for path in result["paths"].values():
        assert path["ticks"] == 50 and path["refined_ticks"] > 0 and path["hold_ticks"] == 0
        assert 0 < path["refine_cpu_ms"]["p50"] <= path["refine_cpu_ms"]["p99"]
    # The top level is the first path's, as a run of one path reports it.
    assert result["refine_cpu_ms"] == result["paths"]["eager"]["refine_cpu_ms"]
    r = hume("bench", "s1-tick", "--paths=[jit]")
    assert r.returncode == 2 and "paths" in r.stderr
