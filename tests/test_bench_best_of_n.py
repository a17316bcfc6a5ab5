"""`hume bench best-of-n`: runs end to end and prints the agreed JSON (timings are not checked), and
the work each method does, which is what its timings measure."""

import dataclasses
import json

import pytest
import torch
from cli_support import hume, last_json

from hume.bench.best_of_n import SIZES, sample_naive
from hume.policy.hume_policy import build_networks, candidate_schedule


def test_smoke_run_prints_json_on_the_last_line(tmp_path):
    result = last_json(hume("bench", "best-of-n", "--smoke", "--json", "--threads=1", f"--output={tmp_path}"))
    assert result["n"] == 5
    for key in ("naive_s", "shared_prefix_s", "speedup"):
        assert isinstance(result[key], float) and result[key] > 0
    assert [row["n"] for row in result["results"]] == [1, 5]
    for row in result["results"]:
        assert {"n", "naive_s", "shared_prefix_s", "speedup"} <= set(row)
        assert row["max_abs_diff"] < 1e-4, "both methods must compute the same candidates"
    assert json.loads((tmp_path / "best-of-n.json").read_text())["results"] == result["results"]


@pytest.mark.slow
def test_whole_think_of_a_checkpoint_eager_and_fast():
    result = last_json(
        hume(
            "bench",
            "best-of-n",
            "--smoke",
            "--json",
            "--threads=1",
            "--sizes=[]",
            "--checkpoint=checkpoints/default",
        )
    )
    assert result["results"] == [] and [row["n"] for row in result["think"]] == [1, 5]
    for row in result["think"]:
        assert row["eager_ms"] > 0 and row["fast_ms"] > 0
        assert row["max_abs_diff"] <= 1e-5, "the fast path computes the eager candidates"
        assert row["eager_traced_graphs"] == 0 and row["fast_traced_graphs"] >= 3
    assert result["think"][0]["eager_vs_n1"] == result["think"][0]["fast_vs_n1"] == 1.0


def test_shared_prefix_encodes_the_observation_once_for_all_candidates():
    """The speedup rests on this: `sample` sees the images and instruction once and moves all N
    candidates through the expert in one batch per Euler step; `sample_naive` re-runs everything
    per candidate and step."""
    n, steps = 5, 3
    cfg = SIZES["tiny"]
    cfg = dataclasses.replace(cfg, system2=dataclasses.replace(cfg.system2, num_steps=steps))
    torch.manual_seed(0)
    s2 = build_networks(cfg, only=("system2",))["system2"].eval()
    calls = {"vision": [], "expert": []}
    s2.vision_tower.register_forward_hook(lambda m, a, o: calls["vision"].append(1))
    s2.expert.layers[0].mlp.register_forward_hook(lambda m, a, o: calls["expert"].append(a[0].shape[0]))
    c = len(cfg.cameras)
    images = torch.rand(1, c, 3, cfg.image_size, cfg.image_size) * 2 - 1
    prefix = (
        images,
        torch.ones(1, c, dtype=torch.bool),
        torch.randint(4, 700, (1, 8)),
        torch.ones(1, 8, dtype=torch.bool),
    )
    state, noise = torch.randn(1, cfg.max_state_dim), torch.randn(1, n, cfg.chunk_size, cfg.max_action_dim)
    plan = candidate_schedule(cfg, n, 0.0)
    schedule = [plan[k][None] for k in ("t0", "dt", "steps", "temperature")]
    with torch.no_grad():
        shared = s2.sample(s2.encode_prefix(*s2.embed_prefix(*prefix)), state, noise, *schedule)
        assert calls == {"vision": [1], "expert": [n] * steps}
        for seen in calls.values():
            seen.clear()
        naive = sample_naive(s2, *prefix, state, noise, *schedule)
    assert len(calls["vision"]) == n * steps and calls["expert"] == [1] * (n * steps)
    torch.testing.assert_close(shared, naive, atol=1e-4, rtol=1e-4)


def test_unknown_benchmark_lists_the_known_ones():
    r = hume("bench", "warp-speed")
    assert r.returncode == 2
    assert "warp-speed" in r.stderr and "best-of-n" in r.stderr
    r = hume("bench", "--help")
    assert r.returncode == 0 and "best-of-n" in r.stdout
    r = hume("bench", "best-of-n", "--help")
    assert r.returncode == 0 and "candidates" in r.stdout


def test_bad_option_is_a_config_error():
    r = hume("bench", "best-of-n", "--sizes=[huge]")
    assert r.returncode == 2 and "huge" in r.stderr
