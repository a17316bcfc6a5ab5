"""A markdown table comparing `hume eval` runs on the same initial states (docs/results.md).

    python scripts/ablation_table.py "full Hume=outputs/results/full" "S1 off=outputs/results/no_system1" ...

Each argument is LABEL=DIR: a `hume eval` output folder, or a `hume deploy` one on LIBERO (its
metrics.json's `episode_results` name each episode's task and initial state). The first run is the
reference: for every other run the table counts the initial states only one of the two solved and
gives McNemar's exact two-sided p-value on those discordant pairs (the runs share initial states, so
pairs say more than two independent intervals). Runs on other initial states are refused unless
--common_states, which compares every run on the states all of them finished. The last column is the
smoothness of plan switches (|Δa| p90 at switches over within plans, pooled over the episodes'
records), and |Δa| p90 over every tick, where the run recorded them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from hume.policy.switches import pooled_summary
from sim.evaluator import EPISODE_LOG, read_log
from sim.stats import wilson_interval

DEPLOY_METRICS = "metrics.json"


def episodes(folder: Path) -> dict[tuple[int, int], dict]:
    """The run's finished episodes by (task id, initial state)."""
    if not (folder / EPISODE_LOG).is_file() and (folder / DEPLOY_METRICS).is_file():
        rows = json.loads((folder / DEPLOY_METRICS).read_text())["episode_results"]
        return {(r["task_id"], r["init_state"]): r for r in rows}
    return {(r["task_id"], r["init_state"]): r for r in read_log(folder / EPISODE_LOG).values()}


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar test: b and c are the two kinds of discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def table(runs: list[tuple[str, Path]], common_states: bool = False) -> str:
    """The markdown table. common_states: compare on the initial states every run finished (a
    reference over the whole suite against ablations on a part of it) instead of refusing runs that
    differ."""
    ref_label, ref_dir = runs[0]
    all_eps = [episodes(folder) for _, folder in runs]
    keys = set(all_eps[0])
    for (_, folder), eps in zip(runs[1:], all_eps[1:], strict=True):
        if set(eps) != keys and not common_states:
            raise SystemExit(f"{folder} ran other initial states than {ref_dir}: compare like with like")
        keys &= set(eps)
    if not keys:
        raise SystemExit("the runs share no initial state")
    ref = all_eps[0]
    lines = [
        f"| variant | successes | rate | 95% Wilson interval | mean steps of successes | "
        f"only {ref_label} / only this | McNemar p | switch / within p90 | every tick p90 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (label, folder), eps in zip(runs, all_eps, strict=True):
        rows = [eps[k] for k in sorted(keys)]
        k = sum(r["success"] for r in rows)
        lo, hi = wilson_interval(k, len(rows))
        wins = [r["steps"] for r in rows if r["success"]]
        steps = f"{sum(wins) / len(wins):.0f}" if wins else "-"
        if folder == ref_dir:
            paired = "-", "-"
        else:
            b = sum(ref[key]["success"] and not eps[key]["success"] for key in keys)
            c = sum(eps[key]["success"] and not ref[key]["success"] for key in keys)
            paired = f"{b} / {c}", f"{mcnemar_p(b, c):.2f}"
        lines.append(
            f"| {label} | {k}/{len(rows)} | {k / len(rows):.0%} | [{lo:.0%}, {hi:.0%}] | {steps} | "
            f"{paired[0]} | {paired[1]} | {_smoothness(rows)} |"
        )
    return "\n".join(lines)


def _smoothness(rows: list[dict]) -> str:
    """The switch / within p90 ratio and every tick's |Δa| p90 cells."""
    pooled = pooled_summary(rows) or {}
    ratio, every = pooled.get("switch_ratio_p90"), (pooled.get("action_change_all") or {}).get("p90")
    return " | ".join("-" if x is None else f"{x:.{d}f}" for x, d in ((ratio, 2), (every, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument(
        "--common_states",
        action="store_true",
        help="compare on the initial states all runs finished instead of refusing runs that differ",
    )
    args = parser.parse_args()
    runs = []
    for arg in args.runs:
        label, sep, folder = arg.rpartition("=")  # a label may hold "=" (N=5)
        finished = any((Path(folder) / name).is_file() for name in ("results.json", DEPLOY_METRICS))
        if not sep or not finished:
            parser.error(
                f"{arg!r}: expected LABEL=DIR where DIR holds a finished `hume eval` (results.json) "
                f"or `hume deploy` ({DEPLOY_METRICS})"
            )
        runs.append((label, Path(folder)))
    # The table is the program's output, not a log line.
    sys.stdout.write(table(runs, args.common_states) + "\n")


if __name__ == "__main__":
    main()
