"""A markdown table comparing `hume eval` runs on the same initial states (docs/results.md).

    python scripts/ablation_table.py "full Hume=outputs/results/full" "S1 off=outputs/results/no_system1" ...

Each argument is LABEL=EVAL_OUTPUT_DIR. The first run is the reference: for every other run the
table counts the initial states only one of the two solved and gives McNemar's exact two-sided
p-value on those discordant pairs (the runs share initial states, so pairs say more than two
independent intervals). The last column is the smoothness of plan switches (results.json
`switches.switch_ratio_p90`: |Δa| p90 at switches over within plans), where the run recorded it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sim.evaluator import EPISODE_LOG, read_log


def episodes(folder: Path) -> dict[tuple[int, int], dict]:
    """The run's finished episodes by (task id, initial state)."""
    return {(r["task_id"], r["init_state"]): r for r in read_log(folder / EPISODE_LOG).values()}


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar test: b and c are the two kinds of discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def table(runs: list[tuple[str, Path]]) -> str:
    ref_label, ref_dir = runs[0]
    ref = episodes(ref_dir)
    lines = [
        f"| variant | successes | rate | 95% Wilson interval | mean steps of successes | "
        f"only {ref_label} / only this | McNemar p | switch / within p90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, folder in runs:
        result = json.loads((folder / "results.json").read_text())
        eps = episodes(folder)
        if set(eps) != set(ref):
            raise SystemExit(f"{folder} ran other initial states than {ref_dir}: compare like with like")
        wins = [r["steps"] for r in eps.values() if r["success"]]
        lo, hi = result["ci95"]
        steps = f"{sum(wins) / len(wins):.0f}" if wins else "-"
        if folder == ref_dir:
            paired = "-", "-"
        else:
            b = sum(ref[k]["success"] and not eps[k]["success"] for k in ref)
            c = sum(eps[k]["success"] and not ref[k]["success"] for k in ref)
            paired = f"{b} / {c}", f"{mcnemar_p(b, c):.2f}"
        lines.append(
            f"| {label} | {result['successes']}/{result['episodes']} | {result['success_rate']:.0%} | "
            f"[{lo:.0%}, {hi:.0%}] | {steps} | {paired[0]} | {paired[1]} | {_switch_ratio(result)} |"
        )
    return "\n".join(lines)


def _switch_ratio(result: dict) -> str:
    ratio = (result.get("switches") or {}).get("switch_ratio_p90")
    return "-" if ratio is None else f"{ratio:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    args = parser.parse_args()
    runs = []
    for arg in args.runs:
        label, sep, folder = arg.rpartition("=")  # a label may hold "=" (N=5)
        if not sep or not (Path(folder) / "results.json").is_file():
            parser.error(f"{arg!r}: expected LABEL=DIR where DIR holds a finished `hume eval` (results.json)")
        runs.append((label, Path(folder)))
    sys.stdout.write(table(runs) + "\n")  # the table is the program's output, not a log line


if __name__ == "__main__":
    main()
