"""Would more labels pay? A learning curve of a critic that ranks candidates at one state.

    python scripts/ranking_learning_curve.py --config configs/train/value_ranking_libero_object.yaml \\
        --heldout_every=5 --thinks 50 100 --output outputs/curves/ranking_libero_object [--steps=300 ...]

One labelled collection (`hume collect` with policy.selector=oracle) serves training and testing:
every `heldout_every`-th labelled episode of each task is held out (`ranking_heldout_every`). For
each K (by default 25%, 50% and 100% of the training thinks, plus the counts given with --thinks)
the value head of the config's `init_from` is trained with the config's settings on the first K
training thinks (`ranking_thinks=K`) and scored on the held-out thinks: pairwise accuracy (the share
of candidate pairs with different outcomes its selection value orders right; 0.5 is chance) with a
Wilson 95% interval over those pairs (too narrow: pairs of one think are not independent), and
the success of the candidate it would choose beside candidate 0, a uniform choice and the best.
K = 0 is `init_from` itself, untrained on labels. Any other `--key=value` is a `hume train`
override (TrainConfig), applied to every K.

Writes to --output: curve.md (the table), curve.png (accuracy against K), curve.json (the rows),
split.json (the labels and settings the curve is for) and thinks_KKKKKK/ (each K's training run
and its ranking.json). Resumable: a K with its ranking.json is not run again, an interrupted one
resumes its training; a folder started on other labels or settings is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hume.config import parse_config, to_dict
from hume.data.labels import LabelledThinks
from hume.train.config import TrainConfig
from hume.train.data import open_training_dataset, ranked_pairs, ranking_rows
from sim.stats import wilson_interval

log = logging.getLogger("ranking_learning_curve")

UNTRAINED = "untrained.json"


def label_counts(fractions: list[float], thinks: list[int], training: int) -> list[int]:
    """The K values: each fraction of the `training` thinks (at least 1) and the absolute counts."""
    if any(not 0 < f <= 1 for f in fractions):
        raise SystemExit(f"--fractions must be in (0, 1], got {fractions}")
    too_many = [k for k in thinks if not 1 <= k <= training]
    if too_many:
        raise SystemExit(f"--thinks {too_many}: there are {training} training thinks (use 1..{training})")
    return sorted({max(1, round(f * training)) for f in fractions} | set(thinks))


def check_split(output: Path, split: dict) -> None:
    """Write split.json, or refuse a folder whose earlier rows were made on other labels or settings."""
    path = output / "split.json"
    split = json.loads(json.dumps(split))  # as it reads back (tuples become lists)
    if path.exists():
        before = json.loads(path.read_text())
        if before != split:
            changed = sorted(k for k in split.keys() | before.keys() if before.get(k) != split.get(k))
            raise SystemExit(
                f"{output} holds a curve of other labels or settings (changed: {changed}); its rows "
                "would not compare with new ones: name a new --output"
            )
    output.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1) + "\n")


def scored_row(checkpoint: str, datasets: list[str], heldout_every: int) -> dict:
    """The held-out ranking of `checkpoint`'s value head, with a Wilson 95% interval."""
    from hume.policy import HumePolicy
    from hume.train.labelled_ranking import rank_labelled_thinks

    row = rank_labelled_thinks(HumePolicy.from_pretrained(checkpoint), datasets, heldout_every)
    right = row["pairwise_accuracy"] * row["pairs"]
    row["ci95"] = list(wilson_interval(right, row["pairs"]))
    row["checkpoint"] = str(checkpoint)
    return row


def run_k(base: TrainConfig, k: int, output: Path, datasets: list[str]) -> dict:
    """Train on the first k training thinks (resuming an interrupted run) and score the result."""
    from hume.train.trainer import train

    cfg = dataclasses.replace(
        base, ranking_thinks=k, output=str(output / "train"), save_every=base.steps, resume=True
    )
    cfg.validate()
    result = train(cfg)
    return scored_row(str(result.checkpoint), datasets, base.ranking_heldout_every)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| labelled thinks trained on (K) | training pairs | held-out thinks | held-out pairs | "
        "pairwise accuracy [95% CI] | success of the chosen | of candidate 0 | of a uniform choice | "
        "of the best | chosen - candidate 0 [95% CI, by episode] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        # (rows scored before the gain was reported have none)
        gain = r.get("gain_over_first")
        glo, ghi = r.get("gain_over_first_ci95", (None, None))
        gained = "-" if gain is None else f"{gain:+.3f} [{glo:+.3f}, {ghi:+.3f}]"
        lines.append(
            f"| {r['k']} | {r['training_pairs']} | {r['thinks']} | {r['pairs']} | "
            f"{r['pairwise_accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {r['success_of_chosen']:.3f} | "
            f"{r['success_of_first']:.3f} | {r['success_of_uniform']:.3f} | {r['success_of_best']:.3f} | "
            f"{gained} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    k = np.array([r["k"] for r in rows])
    acc = np.array([r["pairwise_accuracy"] for r in rows])
    lo, hi = np.array([r["ci95"] for r in rows]).T
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(k, acc, yerr=[acc - lo, hi - acc], marker="o", capsize=4, label="held-out pairwise accuracy")
    ax.axhline(0.5, color="grey", linestyle="--", label="chance")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("labelled thinks trained on (K)")
    ax.set_ylabel("pairwise accuracy (Wilson 95%)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    # No abbreviations: every flag this parser does not know is a TrainConfig override.
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--config", default="configs/train/value_ranking_libero_object.yaml")
    parser.add_argument(
        "--heldout_every", type=int, default=5, help="hold out every k-th episode of each task"
    )
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.25, 0.5, 1.0])
    parser.add_argument("--thinks", type=int, nargs="*", default=[], help="absolute K values too")
    parser.add_argument("--output", default="outputs/curves/ranking_libero_object")
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.heldout_every < 2:
        raise SystemExit(
            f"--heldout_every must be >= 2 (a curve needs held-out thinks), got {args.heldout_every}"
        )
    base = parse_config(
        TrainConfig, ["--config", args.config, *overrides, f"--ranking_heldout_every={args.heldout_every}"]
    )
    if base.critic_target != "ranking" and not base.ranking_weight:
        raise SystemExit(
            f"{args.config}: trains no ranking loss (critic_target: ranking or ranking_weight > 0)"
        )
    datasets = [base.dataset, *base.extra_datasets]
    labels = LabelledThinks.of(open_training_dataset(base))
    if labels is None:
        raise SystemExit(f"{base.dataset}: no labelled thinks (meta/labelled_thinks.jsonl)")
    training = ranking_rows(labels, args.heldout_every, 0)
    held_out = int(labels.held_out(args.heldout_every).sum())
    counts = label_counts(args.fractions, args.thinks, len(training))
    log.info(
        "%d labelled thinks: %d to train on, %d held out (every %d-th episode of each task); K = %s",
        len(labels), len(training), held_out, args.heldout_every, counts,
    )  # fmt: skip
    output = Path(args.output)
    settings = {k: v for k, v in to_dict(base).items() if k not in ("output", "ranking_thinks", "save_every")}
    check_split(output, {"labelled_thinks": len(labels), "held_out_thinks": held_out, "train": settings})

    rows = []
    untrained = output / UNTRAINED
    if not untrained.exists():
        row = {"k": 0, "training_pairs": 0, **scored_row(base.init_from, datasets, args.heldout_every)}
        untrained.write_text(json.dumps(row) + "\n")
    rows.append(json.loads(untrained.read_text()))
    for k in tqdm(counts, desc="learning curve"):
        folder = output / f"thinks_{k:06d}"
        done = folder / "ranking.json"
        if done.exists():
            log.info("K = %d: done before (%s)", k, done)
        else:
            pairs = ranked_pairs(labels.rates[training[:k]])
            row = {"k": k, "training_pairs": pairs, **run_k(base, k, folder, datasets)}
            done.write_text(json.dumps(row) + "\n")
        rows.append(json.loads(done.read_text()))

    table = markdown(rows)
    (output / "curve.md").write_text(table)
    (output / "curve.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(
        rows,
        output / "curve.png",
        f"{Path(base.dataset).name}: 1 in {args.heldout_every} episodes of each task held out",
    )
    log.info("\n%s\nwritten to %s (curve.md, curve.png, curve.json)", table, output)
    sys.stdout.write(json.dumps(rows) + "\n")  # the program's output: the rows, machine-readable
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
