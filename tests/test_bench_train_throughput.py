"""`hume bench train-throughput`: both training stages through the trainer; JSON shape only."""

import pytest
from cli_support import hume, last_json


@pytest.mark.slow
def test_smoke_run_measures_both_stages():
    result = last_json(hume("bench", "train-throughput", "--smoke", "--json", timeout=600))
    assert result["benchmark"] == "train-throughput" and result["batch_size"] == 2
    assert [s["stage"] for s in result["stages"]] == ["system2", "system1_value"]
    for s in result["stages"]:
        assert s["step_s"] > 0 and s["cpu_s_per_step"] > 0 and s["samples_per_s"] > 0
        # Training holds a model, a dataset and optimiser state beyond what the imports take.
        assert s["peak_rss_mb"] > s["baseline_rss_mb"] > 0


def test_missing_model_config_is_a_config_error():
    r = hume("bench", "train-throughput", "--model=configs/model/nope.yaml")
    assert r.returncode == 2 and "nope.yaml" in r.stderr


def test_synthetic_dataset_reads_back(tmp_path):
    from hume.bench.train_throughput import write_dataset
    from hume.data.reader import LeRobotDataset

    ds = LeRobotDataset(write_dataset(tmp_path / "d", episodes=2, length=10, image_size=16))
    assert len(ds.episodes) == 2
    assert ds.columns["action"].shape == (20, 7)


def test_full_size_memory_table_agrees_with_the_sharded_meta_model():
    """The computed per-GPU figures equal what the trainer's sharding gives process 0 of the
    full-size model built on the meta device."""
    from hume.bench.train_memory import paper_table

    table = paper_table("configs/model/full.yaml", gpus=(1, 2))
    s2 = table["stages"]["system2"]
    assert (
        3.2e9 < s2["counts"]["parameters"] < 3.3e9 and s2["counts"]["trainable"] < s2["counts"]["parameters"]
    )
    for stage in table["stages"].values():
        one, two = stage["rows"]
        for row in (one, two):
            checked = row["checked"]
            assert abs(checked["process0_parameters_gb"] - row["parameters_gb"]) <= 0.01
            assert abs(checked["process0_gradients_gb"] - row["gradients_gb"]) <= 0.01
            assert abs(checked["process0_optimizer_gb"] - row["optimizer_gb"]) <= 0.01
        assert two["parameters_gb"] == pytest.approx(one["parameters_gb"] / 2, abs=0.01)
    per_sample = table["activation_bytes_per_sample"]
    assert per_sample["with_checkpointing"] < 0.2 * per_sample["without_checkpointing"]
