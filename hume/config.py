"""Typed configs: frozen dataclasses, filled from a YAML file plus dotted CLI overrides.

Parsing is draccus' (its ArgumentParser: one flag per field, `--config FILE.yaml` first, then the
overrides, decoded into the dataclass). Config modules must stay import-light (no torch), so that a
bad config fails in well under a second, before any model or simulator is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import draccus
import yaml
from draccus.argparsing import ArgumentParser
from draccus.utils import CONFIG_ARG, DraccusException

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file or key."""


def check_checkpoint(path: str, key: str = "checkpoint") -> Path:
    """Fail at once, before any model loads, when `path` is no checkpoint folder (one holding
    config.json); `key` is the config field that named it, for the message."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        what = "has no config.json" if folder.is_dir() else "not found"
        raise ConfigError(
            f"checkpoint folder {path} {what}: train one with `hume train` (or convert one with "
            f"`hume convert`), or pass --{key}=DIR naming a folder written by either or by "
            "HumePolicy.save_pretrained (config.json + model.safetensors)"
        )
    return folder


def renamed_keys(config_cls: type) -> dict[str, str]:
    """A config class's top-level keys that were renamed, {old: new} (its `RENAMED_KEYS`): an old
    key fails naming the new one, instead of draccus' bare "not valid"."""
    return getattr(config_cls, "RENAMED_KEYS", {})


def _refuse_renamed(renamed: dict[str, str], keys, config_file: str | None = None) -> None:
    for old in keys:
        if old in renamed:
            new = renamed[old]
            fix = f"write `{new}:` in {config_file}" if config_file else f"pass --{new}.KEY, not --{old}.KEY"
            raise ConfigError(f"`{old}` is now `{new}` (the same settings under a new name): {fix}")


class _ConfigFile(argparse.Action):
    """`--config FILE.yaml`, stored where draccus reads its config file from; a missing or non-YAML
    file fails here, naming it, before draccus opens it."""

    path: str | None = None
    renamed: dict[str, str] = {}

    def __call__(self, parser, namespace, values, option_string=None):
        if not Path(values).is_file():
            raise ConfigError(
                f"config file not found: {values} (pass an existing YAML file, e.g. configs/...)"
            )
        if Path(values).suffix not in (".yaml", ".yml"):
            raise ConfigError(f"config file {values} is not YAML (.yaml or .yml expected)")
        self.path = values
        if self.renamed:
            try:
                top = yaml.safe_load(Path(values).read_text())
            except yaml.YAMLError as e:
                raise ConfigError(f"config file {values} is not valid YAML: {e}") from None
            _refuse_renamed(self.renamed, top if isinstance(top, dict) else {}, values)
        setattr(namespace, self.dest, values)


def _parser(config_cls: type, prog: str | None) -> tuple[ArgumentParser[Any], _ConfigFile]:
    parser: ArgumentParser[Any] = ArgumentParser(config_cls, prog=prog, exit_on_error=False)
    for action in parser.parser._actions:
        if action.dest == CONFIG_ARG:
            # draccus names its file flag --config_path; ours is --config (the CLI contract).
            action.help = argparse.SUPPRESS
        elif action.type is bool:
            # A switch may be given bare (`--json`); draccus alone wants `--json=true`.
            action.nargs, action.const, action.metavar = "?", "true", "[bool]"
    config_file = parser.parser.add_argument(
        "--config", dest=CONFIG_ARG, action=_ConfigFile, metavar="FILE.yaml", help="YAML file read first"
    )
    assert isinstance(config_file, _ConfigFile)
    config_file.renamed = renamed_keys(config_cls)
    return parser, config_file


def parse_config(
    config_cls: type[T],
    argv: Sequence[str],
    prog: str | None = None,
    extra_args: Callable[[argparse.ArgumentParser], object] | None = None,
) -> T:
    """Build `config_cls` from `--config FILE` (optional) and dotted overrides (`--a.b=c`).

    `extra_args(parser)` may add argparse arguments whose `dest` is a config key (another name for
    a key, a positional). Unknown keys, wrong types and missing files raise ConfigError naming the
    key or file. `--help` prints the generated help and exits (SystemExit), as argparse does.
    """
    flags = (arg[2:].split("=", 1)[0].split(".", 1)[0] for arg in argv if arg.startswith("--"))
    _refuse_renamed(renamed_keys(config_cls), flags)
    parser, config_file = _parser(config_cls, prog)
    if extra_args is not None:
        extra_args(parser.parser)
    try:
        cfg = parser.parse_args(list(argv))
    except DraccusException as e:
        where = f" in {config_file.path}" if config_file.path else ""
        raise ConfigError(f"bad config{where}: {e}") from None
    except argparse.ArgumentError as e:
        # e.g. a flag given without its value (`--steps` at the end of the line), or a bad choice
        raise ConfigError(f"bad command line: {e}") from None
    except FileNotFoundError as e:
        # a file draccus opens itself (`--key="include FILE.yaml"`)
        raise ConfigError(f"config file not found: {e.filename}") from None
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    log.debug("config %s: %s", config_cls.__name__, cfg)
    return cfg


def to_dict(cfg) -> dict:
    """A config as plain data (for config.json / results.json)."""
    return draccus.encode(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def with_defaults(saved: dict, defaults: dict) -> dict:
    """A config saved as plain data with the keys it lacks (at any depth) taken from `defaults`:
    settings added since it was saved read as their defaults."""
    out = dict(defaults)
    for key, value in saved.items():
        both_dicts = isinstance(value, dict) and isinstance(defaults.get(key), dict)
        out[key] = with_defaults(value, defaults[key]) if both_dicts else value
    return out
