"""`hume bench <name> [--config FILE.yaml] [--key=value ...] [--json] [--output DIR]`.

Runs one benchmark of hume/bench/ (the registry is hume.bench.BENCHMARKS). With --json the result
is printed as one JSON object on the last stdout line; with --output DIR it is also written to
DIR/<name>.json.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path

from hume.bench import BENCHMARKS
from hume.cli.dispatch import subcommands
from hume.config import parse_config


def main(argv: Sequence[str]) -> int:
    parser, _ = subcommands(
        "hume bench",
        "benchmark",
        {name: f"{module.replace('.', '/')}.py" for name, module in BENCHMARKS.items()},
        epilog="Run `hume bench <benchmark> --help` for a benchmark's options.",
    )
    args, rest = parser.parse_known_args(argv)
    name = args.name
    module = importlib.import_module(BENCHMARKS[name])
    cfg = parse_config(module.Config, rest, prog=f"hume bench {name}")
    result = module.run(cfg)
    print(module.table(result))
    if cfg.output:
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    if cfg.json:
        print(json.dumps(result))
    return 0
