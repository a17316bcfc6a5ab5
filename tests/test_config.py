"""Config parsing: YAML + dotted overrides through draccus, and errors that name the key/file."""

import dataclasses

import pytest

from hume.config import ConfigError, check_checkpoint, parse_config


@dataclasses.dataclass(frozen=True)
class Inner:
    num_candidates: int = 5
    name: str = "tiny"


@dataclasses.dataclass(frozen=True)
class Outer:
    model: Inner = dataclasses.field(default_factory=Inner)
    output: str = "outputs/x"
    temperature: float = 1.0

    def validate(self) -> None:
        if self.model.num_candidates < 1:
            raise ConfigError(f"model.num_candidates must be >= 1, got {self.model.num_candidates}")


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults_without_file():
    assert parse_config(Outer, []) == Outer()


def test_yaml_then_dotted_override(tmp_path):
    path = write(tmp_path, "model:\n  num_candidates: 3\ntemperature: 0.5\n")
    cfg = parse_config(Outer, ["--config", path, "--model.name=full", "--output", "out/dir"])
    assert cfg.model == Inner(num_candidates=3, name="full")
    assert cfg.temperature == 0.5
    assert cfg.output == "out/dir"


def test_override_wins_over_yaml(tmp_path):
    path = write(tmp_path, "model:\n  num_candidates: 3\n")
    cfg = parse_config(Outer, [f"--config={path}", "--model.num_candidates=9"])
    assert cfg.model.num_candidates == 9


def test_unknown_yaml_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "model:\n  num_candidatez: 3\n")
    with pytest.raises(ConfigError) as e:
        parse_config(Outer, ["--config", path])
    assert "num_candidatez" in str(e.value) and path in str(e.value)


def test_unknown_override_names_key():
    with pytest.raises(ConfigError, match="model.bogus"):
        parse_config(Outer, ["--model.bogus=1"])


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path, "model:\n  num_candidates: many\n")
    with pytest.raises(ConfigError, match="model.num_candidates"):
        parse_config(Outer, ["--config", path])
    with pytest.raises(ConfigError, match="temperature"):
        parse_config(Outer, ["--temperature=hot"])


def test_missing_and_non_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        parse_config(Outer, ["--config", str(tmp_path / "nope.yaml")])
    path = write(tmp_path, "{}", name="c.json")
    with pytest.raises(ConfigError, match="not YAML"):
        parse_config(Outer, ["--config", path])


def test_validate_runs_after_parse():
    with pytest.raises(ConfigError, match="num_candidates must be >= 1"):
        parse_config(Outer, ["--model.num_candidates=0"])


def test_config_flag_needs_a_path():
    with pytest.raises(ConfigError, match="--config"):
        parse_config(Outer, ["--output=x", "--config"])


def test_bare_switch_means_true():
    @dataclasses.dataclass(frozen=True)
    class Switches:
        json: bool = False
        video: bool = True
        output: str = ""

    assert parse_config(Switches, ["--json", "--output", "o"]) == Switches(json=True, output="o")
    assert parse_config(Switches, ["--video", "false"]) == Switches(video=False)


def test_extra_args_name_config_keys():
    def extra(parser):
        parser.add_argument("--out", dest="output")
        parser.add_argument("temperature", nargs="?")

    assert parse_config(Outer, ["--out", "o", "0.5"], extra_args=extra) == Outer(output="o", temperature=0.5)
    assert parse_config(Outer, [], extra_args=extra) == Outer()


def test_flag_without_value_names_flag():
    with pytest.raises(ConfigError, match="--temperature"):
        parse_config(Outer, ["--temperature"])


def test_check_checkpoint_names_the_folder_and_the_key(tmp_path):
    missing = r"nowhere not found: train one with `hume train`.*--policy\.checkpoint=DIR"
    with pytest.raises(ConfigError, match=missing):
        check_checkpoint(str(tmp_path / "nowhere"), "policy.checkpoint")
    with pytest.raises(ConfigError, match=r"has no config\.json.*--checkpoint=DIR"):
        check_checkpoint(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert check_checkpoint(str(tmp_path)) == tmp_path
