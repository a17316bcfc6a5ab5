"""The resumable-run machinery collect and eval share: seeds, the append-only log, the worker pool."""

import json
import os

from hume.data.format import append_jsonl, read_log
from sim.jobs import Unit, episode_seed, run_units


def test_episode_seeds_never_change():
    # Resuming a run, or comparing two, relies on a unit's seed staying what it was.
    assert [episode_seed(0, 0, 0), episode_seed(7, 2, 0), episode_seed(0, 3, 41)] == [
        155694420,
        2877788576,
        2450854811,
    ]


def test_a_row_appended_after_a_torn_line_is_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"unit": 0})
    with path.open("a") as f:
        f.write('{"unit": 1, "succ')  # a crash mid-write
    append_jsonl(path, {"unit": 1})
    append_jsonl(path, {"unit": 2})
    assert read_log(path) == [{"unit": 0}, {"unit": 1}, {"unit": 2}]
    assert json.loads(path.read_text().splitlines()[-1]) == {"unit": 2}


class PidWorker:
    """Answers each unit with the process that ran it; counts its closes in `closed`."""

    closed = 0

    def run(self, unit: Unit) -> dict:
        return {"episode": unit.episode, "pid": os.getpid()}

    def close(self) -> None:
        PidWorker.closed += 1


def test_units_run_once_each_here_or_in_worker_processes():
    units = [Unit(task_id=0, episode=k, init_state=k, seed=k) for k in range(6)]
    here = list(run_units(PidWorker, units, workers=1, uses_torch=False))
    assert [r["episode"] for r in here] == list(range(6)) and {r["pid"] for r in here} == {os.getpid()}
    assert PidWorker.closed == 1, "the in-process worker is closed at the end"
    pooled = list(run_units(PidWorker, units, workers=2, uses_torch=False))
    assert sorted(r["episode"] for r in pooled) == list(range(6))
    assert os.getpid() not in {r["pid"] for r in pooled}, "more than one worker: separate processes"
    assert list(run_units(PidWorker, [], workers=2, uses_torch=False)) == []
