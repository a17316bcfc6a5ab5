"""`hume bench s2-batching`: runs end to end with the tiny model and prints the agreed JSON."""

from cli_support import hume, last_json


def test_tiny_run_prints_speedups_per_client_count():
    result = last_json(hume("bench", "s2-batching", "--json", "--clients=[1,2]", "--seconds=3", "--warmup=1"))
    assert [row["clients"] for row in result["results"]] == [1, 2]
    for row in result["results"]:
        assert row["batched_thinks_per_s"] > 0 and row["one_at_a_time_thinks_per_s"] > 0
        expected = row["batched_thinks_per_s"] / row["one_at_a_time_thinks_per_s"]
        assert abs(row["speedup"] - expected) < 0.01
        # The batching node answered every client, not just the fastest one.
        assert len(row["batched_per_client"]) == row["clients"] and min(row["batched_per_client"]) > 0
