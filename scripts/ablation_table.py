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

LABEL=DIR1,DIR2,... pools runs of one variant, e.g. one per noise seed: the k-th folder of every
variant pairs with the reference's k-th (give the seeds in the same order). Then one state is in
several pairs, which are not independent, so a last column also counts the *states* on which the
variant solved more episodes than the reference and those on which it solved fewer, with the exact
two-sided sign test over them: the states as the units.
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


def episodes(folders: list[Path]) -> dict[tuple[int, int, int], dict]:
    """The runs' finished episodes by (run's position, task id, initial state)."""
    out = {}
    for k, folder in enumerate(folders):
        if not (folder / EPISODE_LOG).is_file() and (folder / DEPLOY_METRICS).is_file():
            rows = json.loads((folder / DEPLOY_METRICS).read_text())["episode_results"]
        else:
            rows = list(read_log(folder / EPISODE_LOG).values())
        out.update({(k, r["task_id"], r["init_state"]): r for r in rows})
    return out


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar test: b and c are the two kinds of discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def sign_by_state(ref: dict, eps: dict, keys: set) -> tuple[int, int]:
    """(states where `eps` solved fewer of its episodes than `ref`, states where it solved more)."""
    diff: dict[tuple[int, int], int] = {}
    for key in keys:
        diff[key[1:]] = diff.get(key[1:], 0) + int(eps[key]["success"]) - int(ref[key]["success"])
    return sum(d < 0 for d in diff.values()), sum(d > 0 for d in diff.values())


def table(runs: list[tuple[str, list[Path]]], common_states: bool = False) -> str:
    """The markdown table. common_states: compare on the initial states every run finished (a
    reference over the whole suite against ablations on a part of it) instead of refusing runs that
    differ."""
    ref_label, ref_dirs = runs[0]
    if any(len(folders) != len(ref_dirs) for _, folders in runs):
        raise SystemExit("every variant needs as many runs as the reference, to pair them in order")
    all_eps = [episodes(folders) for _, folders in runs]
    keys = set(all_eps[0])
    for (_, folders), eps in zip(runs[1:], all_eps[1:], strict=True):
        if set(eps) != keys and not common_states:
            raise SystemExit(
                f"{','.join(map(str, folders))} ran other initial states than "
                f"{','.join(map(str, ref_dirs))}: compare like with like"
            )
        keys &= set(eps)
    if not keys:
        raise SystemExit("the runs share no initial state")
    ref = all_eps[0]
    pooled = len(ref_dirs) > 1
    lines = [
        f"| variant | successes | rate | 95% Wilson interval | mean steps of successes | "
        f"only {ref_label} / only this | McNemar p | switch / within p90 | every tick p90 |"
        + (" states fewer / more solved | sign p |" if pooled else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if pooled else ""),
    ]
    for (label, _), eps in zip(runs, all_eps, strict=True):
        rows = [eps[k] for k in sorted(keys)]
        k = sum(r["success"] for r in rows)
        lo, hi = wilson_interval(k, len(rows))
        wins = [r["steps"] for r in rows if r["success"]]
        steps = f"{sum(wins) / len(wins):.0f}" if wins else "-"
        if eps is ref:
            paired = by_state = "-", "-"
        else:
            b = sum(ref[key]["success"] and not eps[key]["success"] for key in keys)
            c = sum(eps[key]["success"] and not ref[key]["success"] for key in keys)
            paired = f"{b} / {c}", _p(mcnemar_p(b, c))
            fewer, more = sign_by_state(ref, eps, keys)
            by_state = f"{fewer} / {more}", _p(mcnemar_p(fewer, more))  # the same exact test
        lines.append(
            f"| {label} | {k}/{len(rows)} | {k / len(rows):.0%} | [{lo:.0%}, {hi:.0%}] | {steps} | "
            f"{paired[0]} | {paired[1]} | {_smoothness(rows)} |"
            + (f" {by_state[0]} | {by_state[1]} |" if pooled else "")
        )
    return "\n".join(lines)


def _p(p: float) -> str:
    """Two decimals, or two significant digits below 0.01 (so a small p never reads 0.00)."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.2g}"


def _smoothness(rows: list[dict]) -> str:
    """The switch / within p90 ratio and every tick's |Δa| p90 cells."""
    pooled = pooled_summary(rows) or {}
    ratio, every = pooled.get("switch_ratio_p90"), (pooled.get("action_change_all") or {}).get("p90")
    return " | ".join("-" if x is None else f"{x:.{d}f}" for x, d in ((ratio, 2), (every, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR[,DIR...]")
    parser.add_argument(
        "--common_states",
        action="store_true",
        help="compare on the initial states all runs finished instead of refusing runs that differ",
    )
    args = parser.parse_args()
    runs = []
    for arg in args.runs:
        label, sep, names = arg.rpartition("=")  # a label may hold "=" (N=5)
        folders = [Path(name) for name in names.split(",")]
        outputs = ("results.json", DEPLOY_METRICS)
        finished = all(any((f / name).is_file() for name in outputs) for f in folders)
        if not sep or not finished:
            parser.error(
                f"{arg!r}: expected LABEL=DIR[,DIR...] where each DIR holds a finished `hume eval` "
                f"(results.json) or `hume deploy` ({DEPLOY_METRICS})"
            )
        runs.append((label, folders))
    # The table is the program's output, not a log line.
    sys.stdout.write(table(runs, args.common_states) + "\n")


if __name__ == "__main__":
    main()
