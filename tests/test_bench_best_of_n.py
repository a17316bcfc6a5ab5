"""`hume bench best-of-n`: runs end to end and prints the agreed JSON (timings are not checked)."""

import json

from cli_support import hume, last_json


def test_smoke_run_prints_json_on_the_last_line(tmp_path):
    result = last_json(hume("bench", "best-of-n", "--smoke", "--json", "--threads=1", f"--output={tmp_path}"))
    assert result["n"] == 5
    for key in ("naive_s", "shared_prefix_s", "speedup"):
        assert isinstance(result[key], float) and result[key] > 0
    assert [row["n"] for row in result["results"]] == [1, 5]
    for row in result["results"]:
        assert {"n", "naive_s", "shared_prefix_s", "speedup"} <= set(row)
        assert abs(row["speedup"] - row["naive_s"] / row["shared_prefix_s"]) < 0.01 * row["speedup"] + 0.01
        assert row["max_abs_diff"] < 1e-4, "both methods must compute the same candidates"
    assert json.loads((tmp_path / "best-of-n.json").read_text())["results"] == result["results"]


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
