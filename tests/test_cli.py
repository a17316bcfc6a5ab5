"""The `hume` entry point, run as a real installed executable."""

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

from hume.bench import BENCHMARKS
from hume.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = {"train", "eval", "collect", "deploy", "serve", "bench", "stats"}


def hume(*args, timeout=60):
    exe = Path(sys.executable).with_name("hume")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_help_lists_every_contract_command():
    r = hume("--help")
    assert r.returncode == 0
    for name in CONTRACT:
        assert f"  {name} " in r.stdout
    assert CONTRACT <= set(COMMANDS)


def test_missing_config_fails_fast_naming_file():
    t0 = time.monotonic()
    r = hume("eval", "--config", "nonexistent.yaml")
    assert time.monotonic() - t0 < 5
    assert r.returncode != 0
    assert "nonexistent.yaml" in r.stderr


def test_unknown_command_and_bad_log_level():
    r = hume("fly")
    assert r.returncode == 2 and "invalid choice: 'fly'" in r.stderr and "'train'" in r.stderr
    r = hume("--log-level", "LOUD", "stats", "--help")
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_log_level_before_or_after_the_command(tmp_path):
    r = hume("--log-level", "debug", "keys", "--output", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    r = hume("keys", "--log-level", "WARNING", "--output", str(tmp_path / "b"), "--force")
    assert r.returncode == 0, r.stderr


def _options(config) -> list[str]:
    return [f"--{field.name}" for field in dataclasses.fields(config)]


def test_every_command_has_help_naming_its_own_options():
    from hume.cli.convert import ConvertConfig
    from hume.cli.keys import KeysConfig
    from hume.cli.serve import NODES
    from hume.cli.stats import StatsConfig
    from hume.runtime.config import DeployConfig
    from hume.train.config import TrainConfig
    from sim.collect_config import CollectConfig
    from sim.eval_config import EvalConfig

    config_options = {
        "train": _options(TrainConfig),
        "eval": _options(EvalConfig),
        "collect": _options(CollectConfig),
        "deploy": _options(DeployConfig),
        "stats": _options(StatsConfig),
        "keys": _options(KeysConfig),
        "convert": [*_options(ConvertConfig), "--from"],
    }
    expected = {(name,): ["--config", *words] for name, words in config_options.items()}
    expected |= {
        ("serve",): list(NODES),
        ("serve", "system1"): ["--config", *_options(DeployConfig), "--policy.type"],
        ("bench",): list(BENCHMARKS),
        ("bench", "best-of-n"): ["--config", "--candidates", "--json"],
    }
    assert {argv[0] for argv in expected} == set(COMMANDS)
    for argv, words in expected.items():
        r = hume(*argv, "--help")
        assert r.returncode == 0, (argv, r.stderr)
        missing = [w for w in words if not re.search(rf"(?<![\w.-]){re.escape(w)}\b", r.stdout)]
        assert not missing, f"`hume {' '.join(argv)} --help` does not name {missing}"


def test_top_level_help_names_every_benchmark():
    from hume.cli.main import _parser

    text = re.sub(r"-\s+", "-", _parser().format_help())  # argparse may wrap a name at its hyphen
    missing = [name for name in BENCHMARKS if name not in text]
    assert not missing, f"`hume --help` does not name the benchmarks {missing}"
