"""The resumable-run machinery collect and eval share: seeds, the append-only log, the worker pool."""

import json
import os
import signal
import subprocess
import sys
import time

from runtime_support import alive

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


SLEEPY_WORKER = '''
import os, time


class SleepyWorker:
    """Writes its pid beside the run, then works on its unit for a long time."""

    def run(self, unit):
        open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
        time.sleep(120)
        return {}

    def close(self):
        pass
'''


def test_a_terminated_run_takes_its_workers_with_it(tmp_path):
    """`kill` (SIGTERM) of a collection or an evaluation stops its worker processes too: orphans
    would go on recording episodes beside the run that resumes it."""
    (tmp_path / "sleepy.py").write_text(SLEEPY_WORKER)
    pids = tmp_path / "pids"
    pids.mkdir()
    script = (
        "from sim.jobs import Unit, run_units; from sleepy import SleepyWorker; "
        "list(run_units(SleepyWorker, [Unit(0, k, k, k) for k in range(4)], workers=2, uses_torch=False))"
    )
    env = {**os.environ, "PIDS": str(pids), "PYTHONPATH": os.pathsep.join([os.getcwd(), str(tmp_path)])}
    run = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.name) for p in pids.iterdir()]
    assert len(workers) == 2, "both workers started"
    run.terminate()
    assert run.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "no worker outlives its run"
