"""Typed configs: frozen dataclasses, filled from a YAML file plus dotted CLI overrides.

Parsing is done by draccus. Config modules must stay import-light (no torch), so that a bad
config fails in well under a second, before any model or simulator is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
from collections.abc import Sequence
from contextlib import redirect_stderr
from pathlib import Path
from typing import TypeVar

import draccus

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file or key."""


def split_config_arg(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Pull `--config PATH` / `--config=PATH` out of argv; returns (path, the rest)."""
    path: str | None = None
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            path = next(it, None)
            if path is None:
                raise ConfigError(
                    "--config needs a path to a YAML file, e.g. --config configs/eval/smoke.yaml"
                )
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return path, rest


def check_config_file(path: str | None) -> Path | None:
    """Fail at once, naming the file, when a config file is missing or not YAML."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file, e.g. configs/...)")
    if p.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"config file {path} is not YAML (.yaml or .yml expected)")
    return p


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


def parse_config(config_cls: type[T], argv: Sequence[str], prog: str | None = None) -> T:
    """Build `config_cls` from `--config FILE` (optional) and dotted overrides (`--a.b=c`).

    Unknown keys, wrong types and missing files raise ConfigError naming the key or file.
    `--help` prints the generated help and exits (SystemExit), as argparse does.
    """
    path, rest = split_config_arg(argv)
    cfg_path = check_config_file(path)
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            cfg = draccus.parse(config_cls, config_path=cfg_path, args=rest, prog=prog, exit_on_error=False)
    except draccus.utils.DraccusException as e:
        where = f" in {cfg_path}" if cfg_path else ""
        raise ConfigError(f"bad config{where}: {e}") from None
    except argparse.ArgumentError as e:
        # e.g. a flag given without its value (`--steps` at the end of the line)
        raise ConfigError(f"bad command line: {e}") from None
    except SystemExit as e:
        # argparse exits on --help (code 0) and on malformed flags (code 2, message on stderr).
        if e.code not in (0, None):
            raise ConfigError(err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(e)) from None
        raise
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    log.debug("config %s: %s", config_cls.__name__, cfg)
    return cfg


def to_dict(cfg) -> dict:
    """A config as plain data (for config.json / results.json)."""
    return draccus.encode(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
