"""Picking a subcommand: `hume <command>`, `hume serve <node>`, `hume bench <name>`.

draccus parses one config dataclass per call and has no subcommands, so argparse picks the name
(and lists the names in `--help`); the rest of the line goes, unparsed, to the draccus parser of
what was picked. Its `--help` (after the name) is draccus', listing that config's options.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping


def subcommands(
    prog: str, what: str, names: Mapping[str, str], epilog: str = ""
) -> tuple[argparse.ArgumentParser, list[argparse.ArgumentParser]]:
    """A parser for `prog <what> ...` (names -> one-line help) and the parser of each name.

    `parser.parse_known_args(argv)` returns the name (`.name`) and every argument after it, which
    the name's own parser leaves unknown; a missing or unknown name exits with argparse's message
    (code 2)."""
    parser = argparse.ArgumentParser(
        prog=prog, epilog=epilog, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="name", metavar=f"<{what}>", title=f"{what}s", required=True)
    subs = [
        sub.add_parser(name, help=text, add_help=False, allow_abbrev=False) for name, text in names.items()
    ]
    return parser, subs
