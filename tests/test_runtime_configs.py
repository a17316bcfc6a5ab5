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
        ("--serving.nice=-5", "serving.nice"),
        ("--robot.envelope.on_violation=ignore", "on_violation"),
        ("--robot.watchdog_s=0.05", "robot.watchdog_s"),  # less than two periods at 20 Hz
        ("--transport.max_message_bytes=10", "max_message_bytes"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(DeployConfig, [override])


@pytest.mark.parametrize(
    "old_key, new_key, setting",
    [("system1", "control", "control_hz: 10.0"), ("system2", "serving", "nice: 5")],
)
def test_a_deploy_config_with_an_old_section_name_fails_naming_the_new(tmp_path, old_key, new_key, setting):
    # `system1:` / `system2:` were the control loop's and the serving's sections; model configs use
    # them for the two networks.
    old = tmp_path / "old.yaml"
    old.write_text(f"episodes: 2\n{old_key}:\n  {setting}\n")
    with pytest.raises(ConfigError, match=f"`{old_key}` is now `{new_key}`.*write `{new_key}:` in {old}"):
        parse_config(DeployConfig, ["--config", str(old)])
    name, value = setting.split(": ")
    with pytest.raises(ConfigError, match=f"pass --{new_key}.KEY, not --{old_key}.KEY"):
        parse_config(DeployConfig, [f"--{old_key}.{name}={value}"])
    old.write_text(f"episodes: 2\n{new_key}:\n  {setting}\n")
    section = getattr(parse_config(DeployConfig, ["--config", str(old)]), new_key)
    assert getattr(section, name) == float(value)


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
