"""How a policy's value head ranks its own rollouts: does a higher Q go with success?

    python scripts/critic_ranking.py outputs/collect/rollouts_libero_object outputs/eval/full [...]

Reads either rollouts that `hume collect` recorded with `source: policy` (each frame's
`policy.value`: the Q the value head gave the chunk that frame's action came from) or a `hume eval`
run of a Hume checkpoint (each episode's `think_values`: every think's candidate Qs, and
`think_chosen`), with the simulator's success check, and prints, per folder, a markdown row:
episodes, successes, and the AUC of Q for success (the chance that a successful episode's Q is
above a failed one's; 0.5 = the critic cannot tell them apart) with Mann-Whitney's two-sided
p-value, for the episode's first chunk (the state the episode started from) and for the mean over
its frames (over its thinks for an eval run), and the first chunk's AUC within tasks (only pairs
of the same task: an easy task's higher Q does not count; p by permuting outcomes within tasks).
For an eval run it also gives the median spread of a think's candidate Qs (max - min): a critic
that scores every candidate alike cannot choose among them. The last line is the rows as JSON.

Ranking at one state, the metric that decides whether a critic can choose:

    python scripts/critic_ranking.py --checkpoint CKPT outputs/collect/labels_heldout [...]

scores the labelled thinks of each dataset (`hume collect` with policy.selector=oracle; hold them
out from the head's training) with CKPT's value head: the share of candidate pairs with different
outcomes that its selection value orders right (0.5: chance), and the success rate of the
candidate it would choose beside candidate 0, a uniform choice and the best candidate. With
`--heldout_every=k`, only the thinks of the episodes that `hume train --ranking_heldout_every=k`
held out of the same dataset are scored (one collection for training and testing).
`--consensus` instead of `--checkpoint` scores the same thinks by the `consensus` selector
(nearest the candidates' mean; no critic, no model).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from hume.constants import EPISODE_INDEX_KEY, SUCCESS_KEY, TASK_INDEX_KEY
from hume.data import LeRobotDataset
from hume.data.returns import episode_bounds
from sim.collect import POLICY_VALUE
from sim.evaluator import EPISODE_LOG, read_log

log = logging.getLogger("critic_ranking")


def auc(scores: np.ndarray, success: np.ndarray) -> tuple[float, float]:
    """(AUC of `scores` for `success`, two-sided Mann-Whitney p); NaN when one class is empty."""
    good, bad = scores[success], scores[~success]
    if len(good) == 0 or len(bad) == 0:
        return math.nan, math.nan
    result = mannwhitneyu(good, bad, alternative="two-sided")
    return float(result.statistic) / (len(good) * len(bad)), float(result.pvalue)


def within_task_auc(
    scores: np.ndarray, success: np.ndarray, tasks: np.ndarray, permutations: int = 2000
) -> tuple[float, float]:
    """AUC over the (success, failure) pairs of the same task only, so that a critic that merely
    knows which tasks are easy scores 0.5; p from permuting success within each task (two-sided)."""

    groups = [np.flatnonzero(tasks == t) for t in np.unique(tasks)]  # once, not per permutation

    def pooled(labels: np.ndarray) -> float:
        wins = pairs = 0.0
        for idx in groups:
            good, bad = scores[idx][labels[idx]], scores[idx][~labels[idx]]
            diff = good[:, None] - bad[None, :]
            wins += (diff > 0).sum() + 0.5 * (diff == 0).sum()
            pairs += diff.size
        return wins / pairs if pairs else math.nan

    observed = pooled(success)
    if math.isnan(observed):
        return math.nan, math.nan
    rng = np.random.default_rng(0)
    shuffled = success.copy()
    extreme = 0
    for _ in range(permutations):
        for idx in groups:
            shuffled[idx] = rng.permutation(success[idx])
        extreme += abs(pooled(shuffled) - 0.5) >= abs(observed - 0.5) - 1e-12
    return observed, (extreme + 1) / (permutations + 1)


def ranking(folder: str) -> dict:
    """The row of a rollout dataset or an eval run."""
    if (Path(folder) / EPISODE_LOG).exists():
        return eval_ranking(folder)
    ds = LeRobotDataset(folder)
    if POLICY_VALUE not in ds.columns:
        raise SystemExit(f"{folder}: no {POLICY_VALUE!r} column; record rollouts with `source: policy`")
    values = ds.columns[POLICY_VALUE]
    bounds = episode_bounds(ds.columns[EPISODE_INDEX_KEY])
    first = np.array([values[start] for start, _ in bounds])
    mean = np.array([np.nanmean(values[start:stop]) for start, stop in bounds])
    success = np.array([bool(ds.columns[SUCCESS_KEY][stop - 1]) for _, stop in bounds])
    tasks = np.array([int(ds.columns[TASK_INDEX_KEY][start]) for start, _ in bounds])
    return scored_row(folder, first, mean, success, tasks)


def eval_ranking(folder: str) -> dict:
    """Per episode of an eval run: the chosen candidate's Q at the first think and over all thinks."""
    logged = list(read_log(Path(folder) / EPISODE_LOG).values())
    rows = [r for r in logged if r.get("think_values")]
    if not rows:
        raise SystemExit(
            f"{folder}: no episode records think_values (a sync or async run of a Hume checkpoint does)"
        )
    if len(rows) < len(logged):
        log.warning(
            "%s: %d of %d episodes record no think_values, left out",
            folder,
            len(logged) - len(rows),
            len(logged),
        )
    chosen = [
        np.array(
            [
                np.nan if v[k] is None else v[k]
                for v, k in zip(r["think_values"], r["think_chosen"], strict=True)
            ]
        )
        for r in rows
    ]
    spread = [max(v) - min(v) for r in rows for v in r["think_values"] if None not in v and len(v) > 1]
    first = np.array([q[0] for q in chosen])
    mean = np.array([np.nanmean(q) if np.isfinite(q).any() else np.nan for q in chosen])
    success = np.array([bool(r["success"]) for r in rows])
    tasks = np.array([r["task_id"] for r in rows])
    row = scored_row(folder, first, mean, success, tasks)
    row["median_spread"] = float(np.median(spread)) if spread else math.nan
    return row


def scored_row(
    folder: str, first: np.ndarray, mean: np.ndarray, success: np.ndarray, tasks: np.ndarray
) -> dict:
    row = {"dataset": folder, "episodes": len(success), "successes": int(success.sum())}
    for name, scores in (("first", first), ("mean", mean)):
        keep = np.isfinite(scores)
        if not keep.all():
            log.warning("%s: %d episodes without a Q (value head off?) left out", folder, (~keep).sum())
        row[f"auc_{name}"], row[f"p_{name}"] = auc(scores[keep], success[keep])
    keep = np.isfinite(first)
    row["auc_first_within_task"], row["p_first_within_task"] = within_task_auc(
        first[keep], success[keep], tasks[keep]
    )
    return row


def labelled(checkpoint: str | None, datasets: list[str], heldout_every: int = 0) -> int:
    """The ranking table of CKPT's value head, or with no checkpoint of the consensus selector."""
    from hume.policy import HumePolicy
    from hume.train.labelled_ranking import rank_by_consensus, rank_labelled_thinks

    if checkpoint is None:
        rows = [{"dataset": d, **rank_by_consensus([d], heldout_every)} for d in datasets]
    else:
        policy = HumePolicy.from_pretrained(checkpoint)
        rows = [{"dataset": d, **rank_labelled_thinks(policy, [d], heldout_every)} for d in datasets]
    lines = [
        "| labelled thinks | thinks | pairs | pairwise accuracy | success of the chosen | of candidate 0 | "
        "of a uniform choice | of the best | chosen - candidate 0 [95% CI, by episode] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["gain_over_first_ci95"]
        lines.append(
            f"| {r['dataset']} | {r['thinks']} | {r['pairs']} | {r['pairwise_accuracy']:.2f} | "
            f"{r['success_of_chosen']:.2f} | {r['success_of_first']:.2f} | {r['success_of_uniform']:.2f} | "
            f"{r['success_of_best']:.2f} | {r['gain_over_first']:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
        )
    log.info("\n".join(lines))
    sys.stdout.write(json.dumps(rows) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="+", help="rollout datasets (LeRobot folders) or hume eval runs")
    parser.add_argument("--checkpoint", help="rank the datasets' labelled thinks with this value head")
    parser.add_argument(
        "--consensus",
        action="store_true",
        help="rank the datasets' labelled thinks by the consensus selector (no critic)",
    )
    parser.add_argument(
        "--heldout_every",
        type=int,
        default=0,
        help="with --checkpoint: score only the episodes training held out with ranking_heldout_every",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.consensus and args.checkpoint:
        parser.error("--consensus ranks without a critic: leave out --checkpoint")
    if args.heldout_every and not (args.checkpoint or args.consensus):
        parser.error("--heldout_every scores labelled thinks: it needs --checkpoint or --consensus")
    if args.checkpoint or args.consensus:
        return labelled(args.checkpoint, args.datasets, args.heldout_every)
    rows = [ranking(folder) for folder in args.datasets]
    lines = [
        "| rollouts | episodes | successes | AUC of first Q | p | within-task AUC of first Q | p | "
        "AUC of mean Q | p | median Q spread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['episodes']} | {r['successes']} | {r['auc_first']:.2f} | "
            f"{r['p_first']:.3f} | {r['auc_first_within_task']:.2f} | {r['p_first_within_task']:.3f} | "
            f"{r['auc_mean']:.2f} | {r['p_mean']:.3f} | "
            f"{r.get('median_spread', math.nan):.3f} |"
        )
    log.info("\n".join(lines))
    sys.stdout.write(json.dumps(rows) + "\n")  # the program's output: the rows, machine-readable
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
