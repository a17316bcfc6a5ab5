"""What README.md and docs/architecture.md state about the code, checked against the code: the
minimal robot adapter runs, the policy's signatures are the ones written, the observation's path
names files that exist and counts them right."""

import importlib
import importlib.util
import inspect
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.robots.base import make_robot
from hume.config import parse_config
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
from hume.policy import HumePolicy
from hume.runtime.config import DeployConfig, EnvelopeConfig, RobotConfig
from hume.runtime.envelope import Envelope, resolve
from hume.train.config import TrainConfig
from sim.collect_config import CollectConfig
from sim.eval_config import EvalConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "docs/architecture.md").read_text()


def section(text: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.M)]
    return rest[: ends[0]] if ends else rest


@pytest.fixture(scope="module")
def adapter_module(tmp_path_factory):
    """README's minimal robot adapter, written out as the importable module a user would have."""
    code = re.search(r"```python\n(.*?)```", section(README, "### Your own robot"), re.S).group(1)
    path = tmp_path_factory.mktemp("my_lab") / "readme_robot.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("readme_robot", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_robot_adapter_drives_the_default_checkpoint(adapter_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "readme_robot", adapter_module)
    # As a deploy config builds it: robot.kind names the class, robot.options its keywords.
    robot = make_robot(RobotConfig(kind="readme_robot:MyRobot", options={"max_steps": 5}))
    envelope = Envelope(resolve(EnvelopeConfig(), robot, "readme_robot:MyRobot"), "clamp", control_hz=20)
    policy = HumePolicy.from_pretrained(ROOT / "checkpoints/default")
    policy.reset(seed=0)
    robot.reset(0)
    obs = robot.observe()
    cfg = policy.config
    assert {IMAGE_KEY.format(c) for c in cfg.cameras} | {STATE_KEY, TASK_KEY} == set(obs)
    assert obs[STATE_KEY].dtype == np.float32 and obs[STATE_KEY].shape == (cfg.state_dim,)
    steps = 0
    while not robot.done:
        action, _ = envelope.apply(policy.select_action(obs), obs[STATE_KEY])
        assert action.dtype == np.float32 and action.shape == (cfg.action_dim,)
        robot.act(action)
        obs = robot.observe()
        steps += 1
    assert steps == 5 and np.abs(obs[STATE_KEY][:3]).max() > 0  # the actions moved it
    robot.close()


def _signature(fn) -> str:
    params = list(inspect.signature(fn).parameters.values())[1:]  # without self
    return ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}" for p in params
    )


@pytest.mark.parametrize("name", ["think", "refine"])
def test_think_and_refine_signatures_in_the_docs_are_the_codes(name):
    written = f"`{name}({_signature(getattr(HumePolicy, name))})"
    assert written in README, f"README.md does not show {written}`"
    # architecture.md may wrap a long signature over two lines.
    assert written in re.sub(r"\s*\n\s*", " ", ARCHITECTURE), f"docs/architecture.md does not show {written}`"


def test_the_observation_path_names_files_that_exist_and_counts_them():
    table = section(ARCHITECTURE, "## The path of one observation")
    rows = re.findall(r"^\| \d+ \| `([^`]+)` \| (.*) \|$", table, re.M)
    on_path = {path for path, _ in rows}
    bracketed = {p for _, what in rows for p in re.findall(r"`(hume/[^`]+\.py)`", what)} - on_path
    for path in on_path | bracketed:
        assert (ROOT / path).is_file(), path
    claim = re.search(
        r"Counted as files: (\d+) on the path itself.*?(\d+) with the \w+ in brackets", table, re.S
    )
    assert claim, "the table's count sentence"
    assert (int(claim.group(1)), int(claim.group(2))) == (len(on_path), len(on_path | bracketed))


COMMAND_CONFIGS = {"deploy": DeployConfig, "eval": EvalConfig, "collect": CollectConfig, "train": TrainConfig}


def documented_commands():
    """Every `hume deploy|serve|eval|collect|train|bench ...` line of a shell block in README.md,
    docs/*.md and the model cards, as (file, config class, argv); lines with shell variables are
    left out (their values are the shell's)."""
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted(ROOT.glob("checkpoints/*/*.md")),
    ]
    for path in files:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0]
                found = re.search(r"(?:^|\s)(?:\.venv/bin/)?hume\s+(.*)", line)
                if not found or "$" in line:
                    continue
                words = [w for w in shlex.split(found.group(1)) if not w.startswith("--log-level")]
                if words[0] in COMMAND_CONFIGS:
                    yield path.name, COMMAND_CONFIGS[words[0]], words[1:]
                elif words[0] == "serve":
                    yield path.name, DeployConfig, words[2:]
                elif words[0] == "bench":
                    bench = importlib.import_module("hume.bench." + words[1].replace("-", "_"))
                    yield path.name, bench.Config, words[2:]


def test_every_documented_command_line_parses():
    """A renamed or removed key in a documented command fails here, not in a reader's shell."""
    commands = list(documented_commands())
    assert len(commands) > 50
    for name, config_class, argv in commands:
        try:
            parse_config(config_class, [a for a in argv if a != "--help"])
        except Exception as e:
            raise AssertionError(f"{name}: hume ... {' '.join(argv)}: {e}") from None
