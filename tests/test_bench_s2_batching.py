"""`hume bench s2-batching`: runs end to end with the tiny model and prints the agreed JSON."""

from cli_support import hume, last_json


def test_tiny_run_batches_two_clients_and_answers_each():
    result = last_json(hume("bench", "s2-batching", "--json", "--clients=[1,2]", "--seconds=3", "--warmup=1"))
    assert [row["clients"] for row in result["results"]] == [1, 2]
    for row in result["results"]:
        assert row["batched_thinks_per_s"] > 0 and row["one_at_a_time_thinks_per_s"] > 0
        # The batching node answered every client, not just the fastest one.
        assert len(row["batched_per_client"]) == row["clients"] and min(row["batched_per_client"]) > 0
    # Behaviour, not timing: with two clients sending at 20 Hz and a think of tens of ms, the
    # batching node finds both clients' observations waiting and thinks them in one batch, while
    # the other node never does.
    batched, single = result["nodes"]["batched"], result["nodes"]["one_at_a_time"]
    assert batched["batch_size_max"] == 2
    assert single["batch_size_max"] == 1 and single["batch_size_mean"] == 1
    assert batched["chunks_sent"] > 0 and single["chunks_sent"] > 0
