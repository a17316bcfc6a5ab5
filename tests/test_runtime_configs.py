"""configs/deploy/*.yaml parse into DeployConfig; bad values fail naming the key."""

from pathlib import Path

import draccus
import pytest

from hume.config import ConfigError, parse_config
from hume.runtime.config import DeployConfig, HumePolicyConfig, ImportedPolicyConfig
from hume.runtime.policy_loader import load_policy, model_id, same_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs/deploy").glob("*.yaml")), ids=lambda p: p.name)
def test_every_deploy_config_parses(path):
    cfg = parse_config(DeployConfig, ["--config", str(path)])
    # An embedded checkpoint: the default, or the one trained for the config's robot.
    assert cfg.checkpoint.startswith("checkpoints/") and (ROOT / cfg.checkpoint / "config.json").is_file()
    assert cfg.control.chunk_ttl_steps >= cfg.control.s1_replan_steps


def test_demo_config_is_a_short_libero_run():
    cfg = parse_config(DeployConfig, ["--config", str(ROOT / "configs/deploy/demo.yaml")])
    assert cfg.robot.kind == "libero" and 1 <= cfg.episodes <= 5
    assert cfg.transport.observations == "" and cfg.transport.chunks == ""  # the launcher picks ipc://


@pytest.mark.parametrize(
    "override, key",
    [
        ("--episodes=0", "episodes"),
        ("--control.control_hz=0", "control.control_hz"),
        ("--control.chunk_ttl_steps=-1", "chunk_ttl_steps"),
        ("--control.realtime_priority=100", "control.realtime_priority"),
        ("--system2.nice=-5", "system2.nice"),
        ("--robot.envelope.on_violation=ignore", "on_violation"),
        ("--robot.watchdog_s=0.05", "robot.watchdog_s"),  # less than two periods at 20 Hz
        ("--transport.max_message_bytes=10", "max_message_bytes"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(DeployConfig, [override])


def test_a_deploy_config_with_the_old_system1_section_fails_naming_control(tmp_path):
    # `system1:` was the control loop's section; model configs use it for System 1's network.
    old = tmp_path / "old.yaml"
    old.write_text("episodes: 2\nsystem1:\n  control_hz: 10.0\n")
    with pytest.raises(ConfigError, match=f"`system1` is now `control`.*write `control:` in {old}"):
        parse_config(DeployConfig, ["--config", str(old)])
    with pytest.raises(ConfigError, match="pass --control.KEY, not --system1.KEY"):
        parse_config(DeployConfig, ["--system1.control_hz=10"])
    old.write_text("episodes: 2\ncontrol:\n  control_hz: 10.0\n")
    assert parse_config(DeployConfig, ["--config", str(old)]).control.control_hz == 10.0


class OwnPolicy:
    @classmethod
    def from_pretrained(cls, path):
        return cls()


def test_policy_is_a_registered_type_or_your_own_class_by_import_path(tmp_path):
    assert parse_config(DeployConfig, []).policy == HumePolicyConfig()
    own = f"{__name__}:OwnPolicy"
    cfg = parse_config(DeployConfig, ["--policy.type=import", f"--policy.path={own}"])
    assert cfg.policy == ImportedPolicyConfig(path=own)
    assert isinstance(load_policy(cfg.policy, tmp_path), OwnPolicy)
    path = tmp_path / "deploy_config.yaml"  # as the launcher hands the config to the nodes
    path.write_text(draccus.dump(cfg))
    assert parse_config(DeployConfig, ["--config", str(path)]) == cfg
    with pytest.raises(ConfigError, match="policy.path must be 'package.module:Class'"):
        parse_config(DeployConfig, ["--policy.type=import", "--policy.path=hume.policy.HumePolicy"])
    with pytest.raises(ConfigError, match="policy.type.*'hume', 'import'"):
        parse_config(DeployConfig, ["--policy.type=mine"])


def test_model_id_ignores_folder_name_and_training_state(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"weights")
    (b / "optimizer.pt").write_bytes(b"optimizer state")
    assert model_id(a).startswith("a@") and same_model(model_id(a), model_id(b))
    (b / "model.safetensors").write_bytes(b"other weights")
    assert not same_model(model_id(a), model_id(b))


def test_a_deployment_picks_its_selector_but_not_the_oracle(tmp_path):
    cfg = parse_config(DeployConfig, ["--policy.selector=coherence", "--policy.num_candidates=3"])
    assert cfg.policy.overrides() == {"selector": "coherence", "num_candidates": 3}
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    HumePolicy.from_config(HumeConfig()).save_pretrained(tmp_path)
    loaded = load_policy(cfg.policy, tmp_path)
    assert (loaded.config.selector, loaded.config.num_candidates) == ("coherence", 3)
    assert parse_config(DeployConfig, []).policy.overrides() == {}
    with pytest.raises(ConfigError, match="hume eval --policy.selector=oracle"):
        parse_config(DeployConfig, ["--policy.selector=oracle"])
    with pytest.raises(ConfigError, match="policy.selector must be one of"):
        parse_config(DeployConfig, ["--policy.selector=best"])
