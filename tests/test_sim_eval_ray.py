"""`hume eval --backend=ray`: the local backend's episodes, as Ray tasks on a private 2-CPU Ray."""

import dataclasses
import functools
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hume.config import ConfigError, parse_config
from sim.eval_config import EvalConfig
from sim.evaluator import evaluate, make_policy
from sim.ray_backend import SCRATCH_PREFIX

# Short episodes, small fast renders: the pipeline is real, the episodes are cheap.
SHORT = ["--suite=libero_spatial", "--tasks=[1]", "--max_steps=6", "--image_size=64", "--fast_render=true"]
# An episode's outcome besides its final state; `seconds` (wall time) differs between runs.
OUTCOME = ("task_id", "episode", "init_state", "seed", "success", "steps")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    HumePolicy.from_config(HumeConfig()).save_pretrained(path)
    return path


def config(checkpoint, out, *extra) -> EvalConfig:
    argv = [*SHORT, "--episodes_per_task=3", "--videos_per_task=1", *extra]
    return parse_config(EvalConfig, [*argv, f"--policy.checkpoint={checkpoint}", f"--output={out}"])


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


def assert_same_outcomes(out: Path, reference: Path) -> None:
    """Each episode in `out` ended as the same episode did in `reference`."""
    ref = {r["episode"]: r for r in rows(reference)}
    for r in rows(out):
        same = ref[r["episode"]]
        assert {k: r[k] for k in OUTCOME} == {k: same[k] for k in OUTCOME}
        assert r["final_state"] == pytest.approx(same["final_state"], abs=1e-4)


@pytest.fixture(scope="module")
def local_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    evaluate(config(checkpoint, out, "--num_workers=2"))
    return out


@pytest.mark.slow
def test_resumed_ray_run_matches_local_processes(checkpoint, local_run, tmp_path):
    """A folder holding one finished episode: Ray runs the other two, with the local outcomes."""
    (tmp_path / "episodes.jsonl").write_text(json.dumps(rows(local_run)[0]) + "\n")
    cfg = config(checkpoint, tmp_path, "--backend=ray", "--num_workers=2")
    had_token = (Path.home() / ".ray" / "auth_token").exists()
    results = evaluate(cfg)
    assert results["throughput"]["episodes_run"] == 2 and results["throughput"]["backend"] == "ray"
    assert sorted(r["episode"] for r in rows(tmp_path)) == [0, 1, 2], "every episode exactly once"
    assert_same_outcomes(tmp_path, local_run)
    assert results["episodes"] == 3 and results["successes"] == sum(r["success"] for r in rows(local_run))
    copied = rows(local_run)[0]["episode"]  # its video stayed in the local run's folder
    filmed = [r for r in rows(tmp_path) if "video" in r and r["episode"] != copied]
    assert all((tmp_path / r["video"]).stat().st_size > 1000 for r in filmed), "videos come back to DIR"
    prov = results["provenance"]
    assert prov["backend"] == "ray" and prov["packages"]["ray"] and prov["seed"] == 7
    assert len(prov["checkpoint"]["sha256"]) == 64
    assert (Path.home() / ".ray" / "auth_token").exists() == had_token, "no token file written"

    before = rows(tmp_path)
    assert evaluate(cfg)["throughput"]["episodes_run"] == 0
    assert rows(tmp_path) == before, "a finished evaluation runs nothing more"


class PidMarkingPolicy:
    """The policy `make_policy` builds, leaving this worker process's pid in `folder` as its
    episode starts (so that a test can kill the worker mid-episode), slowed so that it is."""

    def __init__(self, cfg, folder: str):
        self.inner = make_policy(cfg)
        self.folder = Path(folder)
        self.marked = False

    def reset(self, seed=None):
        self.inner.reset(seed=seed)
        self.marked = False

    def select_action(self, obs):
        if not self.marked:
            (self.folder / str(os.getpid())).touch()
            self.marked = True
        time.sleep(0.5)
        return self.inner.select_action(obs)


@pytest.mark.slow
def test_a_killed_ray_worker_is_retried_and_counted_once(checkpoint, local_run, tmp_path, monkeypatch):
    # The private Ray's workers inherit this environment: they import the policy from this file.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    )
    pids = tmp_path / "pids"
    pids.mkdir()
    # The driver's temp folder and its workers' (they inherit the environment): where they film.
    # A short path: Ray's sockets go under it too (at most 107 bytes).
    scratch = Path(tempfile.mkdtemp(prefix="ht-"))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = tmp_path / "eval"
    cfg = config(checkpoint, out, "--backend=ray", "--num_workers=1", "--episodes_per_task=2")
    factory = functools.partial(PidMarkingPolicy, folder=str(pids))
    result: dict = {}
    driver = threading.Thread(target=lambda: result.update(evaluate(cfg, factory)))
    driver.start()
    deadline = time.monotonic() + 240
    while not any(pids.iterdir()):
        assert driver.is_alive() and time.monotonic() < deadline, "no episode started"
        time.sleep(0.1)
    (victim,) = [int(p.name) for p in pids.iterdir()]
    os.kill(victim, signal.SIGKILL)  # mid-episode: its task is lost with the process
    driver.join(timeout=300)
    assert not driver.is_alive()
    assert len(list(pids.iterdir())) >= 2, "the lost task ran again in a new worker process"
    assert sorted(r["episode"] for r in rows(out)) == [0, 1], "the retried episode is counted once"
    assert_same_outcomes(out, local_run)
    assert result["episodes"] == 2 and "PidMarkingPolicy" in result["provenance"]["policy_factory"]
    # The killed worker's scratch folder (and every other one) is gone with the run.
    left = list(scratch.glob(f"{SCRATCH_PREFIX}*"))
    shutil.rmtree(scratch, ignore_errors=True)
    assert not left, left


def test_ray_settings_are_checked_before_anything_starts():
    for argv, key in (
        (["--backend=spark"], "backend"),
        (["--backend=ray", "--mode=deploy"], "backend=local"),
        (["--backend=ray", "--ray.cpus_per_worker=0"], "ray.cpus_per_worker"),
        (["--backend=ray", "--ray.max_retries=-1"], "ray.max_retries"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_config(EvalConfig, argv)


def test_task_resources_ask_for_gpus_only_for_a_cuda_policy():
    from sim.ray_backend import check_resources, task_resources

    cpu = parse_config(EvalConfig, ["--backend=ray", "--ray.gpus_per_worker=0.5"])
    assert task_resources(cpu) == {"CPU": 1.0}
    cuda = dataclasses.replace(cpu, policy=dataclasses.replace(cpu.policy, device="cuda"))
    assert task_resources(cuda) == {"CPU": 1.0, "GPU": 0.5}
    check_resources({"CPU": 1.0, "GPU": 0.5}, {"CPU": 16.0, "GPU": 1.0})
    with pytest.raises(ConfigError, match="ray.gpus_per_worker"):
        check_resources({"CPU": 1.0, "GPU": 0.5}, {"CPU": 16.0})


def test_ray_temp_dir_is_under_the_output_when_its_sockets_fit(tmp_path):
    from sim.ray_session import SESSION_SUFFIX, SOCKET_PATH_MAX, temp_dir

    cfg = parse_config(EvalConfig, ["--backend=ray"])
    assert temp_dir(cfg, Path("/o/run")) == Path("/o/run/ray")
    deep = Path("/o") / ("x" * 80)
    fallback = temp_dir(cfg, deep)
    assert len(str(fallback)) + SESSION_SUFFIX <= SOCKET_PATH_MAX
    assert fallback == temp_dir(cfg, deep), "a resumed run finds the same folder"
    chosen = parse_config(EvalConfig, ["--backend=ray", f"--ray.temp_dir={tmp_path}"])
    assert temp_dir(chosen, deep) == tmp_path
