"""How much could selection give? Tables from oracle runs and from repeated plain runs.

    python scripts/headroom_table.py oracle outputs/eval/headroom/oracle5 [...]
    python scripts/headroom_table.py seeds outputs/eval/headroom/n1 outputs/eval/headroom/n1_seed1 [...]

`oracle`: for each `hume eval --policy.selector=oracle` run, over its episodes: how often the
plain sample (candidate 0) succeeded when its branch was run at the first branch point, how often
the oracle's episode succeeded, the states it rescued (candidate 0 failed, another succeeded), how
many candidates it tried per branch point, and which one it took.

`seeds`: the same states run several times with different noise (`hume eval --seed=S` for the
same official states): per state, how many of the runs solved it (never / sometimes / always),
and pass@k, the chance that at least one of k independent tries succeeds (the unbiased estimate
1 - C(n - c, k) / C(n, k) from c successes in n runs, averaged over states): what best-of-k could
reach with a perfect chooser among whole episodes.

The last line is the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import Counter
from pathlib import Path

from sim.evaluator import EPISODE_LOG, read_log

log = logging.getLogger("headroom_table")


def oracle_row(folder: str) -> dict:
    rows = logged(folder)
    branched = [r for r in rows if r.get("oracle")]
    if not branched:
        raise SystemExit(f"{folder}: no oracle branch points (was it run with --policy.selector=oracle?)")
    first = [r["oracle"][0] for r in branched]
    plain = [bool(b["outcomes"][0][0][0]) for b in first]
    success = [bool(r["success"]) for r in branched]
    return {
        "run": folder,
        "episodes": len(branched),
        "candidate_0_successes": sum(plain),
        "oracle_successes": sum(success),
        "rescued": sum(s and not p for s, p in zip(success, plain, strict=True)),
        "candidates_tried_mean": sum(len(b["outcomes"]) for r in branched for b in r["oracle"])
        / sum(len(r["oracle"]) for r in branched),
        "chosen": dict(sorted(Counter(b["chosen"] for r in branched for b in r["oracle"]).items())),
    }


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k tries drawn without replacement from n, c of them successes, succeeds)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def logged(folder: str) -> list[dict]:
    return list(read_log(Path(folder) / EPISODE_LOG).values())


def seeds_row(folders: list[str]) -> dict:
    runs = [
        {
            (r["task_id"], r["init_state"]): bool(r["success"])
            for r in read_log(Path(f) / EPISODE_LOG).values()
        }
        for f in folders
    ]
    states = set.intersection(*(set(run) for run in runs))
    if not states:
        raise SystemExit("the runs share no initial state")
    n = len(runs)
    solved = [sum(run[s] for run in runs) for s in sorted(states)]
    return {
        "runs": n,
        "states": len(states),
        "never": sum(c == 0 for c in solved),
        "sometimes": sum(0 < c < n for c in solved),
        "always": sum(c == n for c in solved),
        "pass_at_k": {k: sum(pass_at_k(n, c, k) for c in solved) / len(solved) for k in range(1, n + 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=("oracle", "seeds"))
    parser.add_argument("runs", nargs="+", help="hume eval output folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.kind == "oracle":
        rows = [oracle_row(f) for f in args.runs]
        lines = [
            "| oracle run | episodes | candidate 0 succeeds | oracle succeeds | rescued | "
            "candidates tried | chosen |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['run']} | {r['episodes']} | {r['candidate_0_successes']} | {r['oracle_successes']} | "
            f"{r['rescued']} | {r['candidates_tried_mean']:.2f} | "
            + ", ".join(f"{i}: {c}" for i, c in r["chosen"].items())
            + " |"
            for r in rows
        ]
    else:
        rows = [seeds_row(args.runs)]
        r = rows[0]
        ks = list(r["pass_at_k"])
        lines = [
            "| runs | states | never solved | sometimes | always | "
            + " | ".join(f"pass@{k}" for k in ks)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(ks),
            f"| {r['runs']} | {r['states']} | {r['never']} | {r['sometimes']} | {r['always']} | "
            + " | ".join(f"{v:.2f}" for v in r["pass_at_k"].values())
            + " |",
        ]
    log.info("\n".join(lines))
    sys.stdout.write(json.dumps(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
