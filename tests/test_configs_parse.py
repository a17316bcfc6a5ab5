"""Every shipped collect, train and eval config parses into its command's config (no unknown or
mistyped key), and the checkpoints it names inside the repository exist."""

from pathlib import Path

import pytest

from hume.config import parse_config
from hume.train.config import TrainConfig
from sim.collect import CollectConfig
from sim.eval_config import EvalConfig

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"collect": CollectConfig, "train": TrainConfig, "eval": EvalConfig}
FILES = [(kind, p) for kind in KINDS for p in sorted((ROOT / "configs" / kind).glob("*.yaml"))]


@pytest.mark.parametrize(("kind", "path"), FILES, ids=[f"{k}/{p.name}" for k, p in FILES])
def test_config_parses_and_its_repo_checkpoints_exist(kind, path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = parse_config(KINDS[kind], ["--config", str(path)])
    checkpoint = cfg.init_from if kind == "train" else cfg.policy.checkpoint
    if checkpoint.startswith("checkpoints/"):
        assert (ROOT / checkpoint / "config.json").is_file(), f"{path.name} names {checkpoint}"
