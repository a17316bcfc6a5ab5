"""`hume [--log-level LEVEL] <command> [--config FILE.yaml] [--dotted.key=value ...]`.

Each command lives in its own module `hume.cli.<name>` exposing `main(argv) -> int`, which parses
its config with draccus (hume/config.py); modules are imported only when their command runs, so
`hume --help` and config errors stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from hume.bench import BENCHMARKS
from hume.cli.dispatch import subcommands
from hume.config import ConfigError
from hume.logging_utils import LEVELS, setup_logging

COMMANDS: dict[str, str] = {
    "train": "train System 2 (flow matching) or System 1 + value-query head (Cal-QL)",
    "eval": "evaluate a policy in LIBERO (modes: sync, async, deploy) -> results.json",
    "collect": "record scripted-expert LIBERO episodes as a LeRobot dataset",
    "deploy": "launch a two-process deployment (System-2 node + System-1 node) -> metrics.json",
    "serve": "run one node: `serve system2`, `serve system1` or `serve openpi`",
    "bench": "benchmarks: " + ", ".join(BENCHMARKS),
    "stats": "compute normalisation statistics of a LeRobot dataset",
    "keys": "generate CURVE key pairs for non-loopback deployments",
    "convert": "convert a released checkpoint (the authors' Hume, pi0) into ours: --from hume|pi0 SRC",
}


def _parser() -> argparse.ArgumentParser:
    parser, commands = subcommands(
        "hume", "command", COMMANDS, epilog="Run `hume <command> --help` for a command's options."
    )
    # --log-level belongs to no command's config, so argparse takes it, before or after the command
    # (the command's parser leaves it unset, not to override one given before).
    for p, default in ((parser, "INFO"), *((c, argparse.SUPPRESS) for c in commands)):
        p.add_argument("--log-level", type=str.upper, choices=LEVELS, default=default, help="logging level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = _parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level)
    module = importlib.import_module(f"hume.cli.{args.name}")
    try:
        return int(module.main(rest) or 0)
    except ConfigError as e:
        print(f"hume {args.name}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("hume").warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
