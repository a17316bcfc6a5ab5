"""scripts/device_check.sh: the real script in its smoke mode (tiny, CPU), every step with a result,
and a step over its time budget stopped with what it started while the next one still runs."""

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_support import ROOT, hume, last_json

from hume.bench.device_steps import STEPS
from hume.models.configuration_hume import HumeConfig

SCRIPT = ROOT / "scripts" / "device_check.sh"


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _rows(result: dict) -> dict:
    return {row["step"]: row for row in result["steps"]}


def _alive_in_session(pid: int) -> list[int]:
    """Processes still in the session step `pid` led."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == pid and fields[0] != "Z":  # fields[3]: the session id
                alive.append(int(entry.name))
    return alive


@pytest.mark.slow
def test_smoke_run_gives_every_step_a_result(tmp_path):
    r = _script("--smoke", f"--output={tmp_path}", "--json", timeout=900)
    result = last_json(r)
    assert json.loads((tmp_path / "device-check.json").read_text()) == result
    table = (tmp_path / "device_check.md").read_text()
    assert table.splitlines()[0].startswith(f"### Device check: {result['device']}")
    assert result["smoke"] and result["size"] == "tiny" and result["dtype"] == "float32"
    rows = _rows(result)
    assert list(rows) == list(STEPS)
    fields = {f.name for f in dataclasses.fields(HumeConfig)}
    for name, row in rows.items():
        assert f"| `{name}` |" in table and f"| `{name}` |" in r.stdout
        if row["status"] == "unavailable":
            # Only a switch this code really lacks may make a step unavailable.
            switch = row["reason"].removeprefix("no ").removesuffix(" switch")
            assert switch in ("compile", "dtype") and switch not in fields, row
        else:
            assert row["status"] == "ok", (name, row.get("error"), Path(row["log"]).read_text()[-2000:])
            assert row["summary"] and f"| ok | {row['summary']} |" in table
    eager = rows["think-eager"]["result"]
    assert [t["n"] for t in eager["think"]] == [1, 5, 10]
    assert all(t["p50_ms"] > 0 for t in eager["think"]) and eager["refine"]["p50_ms"] > 0
    if "compile" in fields:
        assert rows["think-fast"]["status"] == "ok"
    train = rows["train-step"]["result"]["stages"]
    assert [(s["stage"], s["weights"]) for s in train] == [
        ("system2", "full"),
        ("system1_value", "full"),
        ("system2", "lora"),
    ]
    # LoRA trains a small part of what the full System-2 step trains.
    assert 0 < train[2]["trainable"] < train[0]["trainable"]
    assert all(s["step_s"] > 0 and s["peak_memory_gib"] > 0 for s in train)
    assert [row["clients"] for row in rows["s2-batching"]["result"]["results"]] == [1, 2]
    fsdp = rows["fsdp-step"]["result"]
    assert [s["stage"] for s in fsdp["stages"]] == ["system2", "system1_value"] and fsdp[
        "distributed"
    ] == "fsdp"
    s1 = rows["s1-cuda-graphs"]["result"]
    assert s1["eager"]["p50_ms"] > 0 and "CUDA" in s1["cuda_graphs"]["skipped"]
    assert s1["tick"]["ticks"] == 40 and s1["tick"]["tick_ms"]["p50"] > 0


def test_a_step_over_its_budget_is_stopped_with_its_children_and_the_next_one_runs(tmp_path):
    # Each of these takes well over a second: the sharded step forks its training processes.
    args = ("--smoke", "--steps=[fsdp-step, s1-cuda-graphs]", "--step_budget_s=1.5", f"--output={tmp_path}")
    result = last_json(hume("bench", "device-check", *args, "--json", timeout=120))
    rows = _rows(result)
    assert list(rows) == ["fsdp-step", "s1-cuda-graphs"]
    for row in rows.values():
        assert row["status"] == "timed out" and "budget" in row["error"]
        assert _alive_in_session(row["pid"]) == []
    assert "| `fsdp-step` |" in (tmp_path / "device_check.md").read_text()


def test_without_cuda_the_gpu_run_says_so(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("with CUDA this is the device check itself, minutes long")
    result = last_json(
        hume("bench", "device-check", "--steps=[think-eager]", f"--output={tmp_path}", "--json")
    )
    assert result["device"] == "no CUDA device"
    assert result["steps"][0]["status"] == "skipped" and "CUDA" in result["steps"][0]["error"]


def test_unknown_step_is_a_config_error():
    r = hume("bench", "device-check", "--steps=[warp-drive]")
    assert r.returncode == 2 and "warp-drive" in r.stderr
