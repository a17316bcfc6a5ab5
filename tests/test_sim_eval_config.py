"""`hume eval`'s config: selectors and oracle settings checked at parse time, and the policy
overrides checked against the checkpoint before anything is written."""

import pytest

from hume.config import ConfigError, parse_config
from sim.eval_config import EvalConfig
from sim.evaluator import evaluate

DEFAULT = "checkpoints/default"


def test_eval_config_checks_the_selector():
    cfg = parse_config(EvalConfig, ["--policy.selector=gated", "--policy.gated_margin=0.3"])
    assert cfg.policy.overrides() == {"selector": "gated", "gated_margin": 0.3}
    with pytest.raises(ConfigError, match="policy.selector must be one of"):
        parse_config(EvalConfig, ["--policy.selector=best"])
    with pytest.raises(ConfigError, match="needs mode=sync"):
        parse_config(EvalConfig, ["--policy.selector=oracle", "--mode=async"])
    with pytest.raises(ConfigError, match="oracle.thinks"):
        parse_config(EvalConfig, ["--policy.selector=oracle", "--oracle.seeds=0"])


def test_a_bad_policy_override_fails_before_the_output_folder_is_written(tmp_path):
    out = tmp_path / "eval"
    argv = ["--policy.rtc_soft_steps=-5", f"--policy.checkpoint={DEFAULT}", f"--output={out}"]
    with pytest.raises(ConfigError, match="policy.rtc_soft_steps=-5 do not fit the checkpoint"):
        evaluate(parse_config(EvalConfig, argv))
    assert not out.exists()
