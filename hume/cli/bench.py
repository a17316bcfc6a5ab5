"""`hume bench <name> [--config FILE.yaml] [--key=value ...] [--json] [--output DIR]`.

Runs one benchmark of hume/bench/ (the registry is hume.bench.BENCHMARKS). With --json the result
is printed as one JSON object on the last stdout line; with --output DIR it is also written to
DIR/<name>.json.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from hume.bench import BENCHMARKS
from hume.config import parse_config

# Switches that may be given bare (`--json`); draccus itself wants `--json=true`.
BARE_FLAGS = ("--json", "--smoke")


def _usage() -> str:
    names = "\n".join(f"  {name}" for name in BENCHMARKS)
    return (
        "usage: hume bench <name> [--config FILE.yaml] [--key=value ...] [--json] [--output DIR]\n\n"
        f"benchmarks:\n{names}\n\nRun `hume bench <name> --help` for a benchmark's options."
    )


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], [f"{a}=true" if a in BARE_FLAGS else a for a in argv[1:]]
    if name not in BENCHMARKS:
        print(f"hume bench: unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
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
