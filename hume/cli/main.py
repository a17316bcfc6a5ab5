"""`hume <command> [--config FILE.yaml] [--dotted.key=value ...]`.

Each command lives in its own module `hume.cli.<name>` exposing `main(argv) -> int`; modules are
imported only when their command runs, so `hume --help` and config errors stay fast.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

from hume.config import ConfigError
from hume.logging_utils import LEVELS, setup_logging

COMMANDS: dict[str, str] = {
    "train": "train System 2 (flow matching) or System 1 + value-query head (Cal-QL)",
    "eval": "evaluate a policy in LIBERO (modes: sync, async, deploy) -> results.json",
    "collect": "record scripted-expert LIBERO episodes as a LeRobot dataset",
    "deploy": "launch a two-process deployment (System-2 node + System-1 node) -> metrics.json",
    "serve": "run one node: `serve system2`, `serve system1` or `serve openpi`",
    "bench": "benchmarks: best-of-n, s1-tick, transport, eval-throughput, train-throughput",
    "stats": "compute normalisation statistics of a LeRobot dataset",
    "keys": "generate CURVE key pairs for non-loopback deployments",
    "convert": "convert a released checkpoint (the authors' Hume, pi0) into ours: --from hume|pi0 SRC",
}

USAGE = "usage: hume [--log-level LEVEL] <command> [--config FILE.yaml] [--key.sub=value ...] [--help]"


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [USAGE, "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", f"options:\n  --log-level LEVEL  one of {', '.join(LEVELS)} (default INFO)"]
    lines += ["", "Run `hume <command> --help` for a command's options."]
    return "\n".join(lines)


def _pop_log_level(argv: list[str]) -> tuple[str, list[str]]:
    level, rest, i = "INFO", [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--log-level" and i + 1 < len(argv):
            level, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--log-level="):
            level = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return level, rest


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    level, argv = _pop_log_level(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hume: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        setup_logging(level)
    except ValueError as e:
        print(f"hume: {e}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"hume.cli.{command}")
    try:
        return int(module.main(rest) or 0)
    except ConfigError as e:
        print(f"hume {command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("hume").warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
