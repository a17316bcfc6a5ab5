"""What an evaluation reports: results.json (success rates with Wilson intervals) and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from hume.config import to_dict
from hume.policy.switches import pooled_summary
from sim.stats import wilson_interval


def _rate(successes: int, episodes: int) -> dict:
    lo, hi = wilson_interval(successes, episodes)
    return {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes if episodes else 0.0,
        "ci95": [round(lo, 4), round(hi, 4)],
    }


def summarize(cfg, tasks, rows: list[dict]) -> dict:
    """Per-task and overall counts of the finished episodes `rows` (one per unit)."""
    per_task = []
    for task in tasks:
        mine = [r for r in rows if r["task_id"] == task.task_id]
        wins = sum(bool(r["success"]) for r in mine)
        per_task.append(
            {"task_id": task.task_id, "name": task.name, "instruction": task.instruction}
            | _rate(wins, len(mine))
        )
    total = _rate(sum(t["successes"] for t in per_task), sum(t["episodes"] for t in per_task))
    steps = [r["steps"] for r in rows]
    return {
        "suite": cfg.suite,
        "mode": cfg.mode,
        **total,
        "tasks": per_task,
        "mean_steps": sum(steps) / len(steps) if steps else None,
        # Action changes where a new plan takes over vs within plans (hume/policy/switches.py).
        "switches": pooled_summary(rows),
        "config": to_dict(cfg),
    }


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_results(out: Path, cfg, tasks, rows: list[dict], throughput: dict, provenance: dict) -> dict:
    results = summarize(cfg, tasks, rows) | {"throughput": throughput, "provenance": provenance}
    write_json(out / "results.json", results)
    return results


def write_chart(path: Path, results: dict) -> None:
    """Bar chart of per-task success with the Wilson 95% interval as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    rates = [t["success_rate"] * 100 for t in tasks]
    err = [
        [r - t["ci95"][0] * 100 for r, t in zip(rates, tasks, strict=True)],
        [t["ci95"][1] * 100 - r for r, t in zip(rates, tasks, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(tasks) + 2), 3.5))
    xs = list(range(len(tasks)))
    ax.bar(xs, rates, yerr=err, capsize=3, color="#4878a8")
    ax.set_xticks(xs, [str(t["task_id"]) for t in tasks])
    ax.set_ylim(0, 105)
    ax.set_xlabel("task id")
    ax.set_ylabel("success (%)")
    overall = f"{results['success_rate']:.1%} of {results['episodes']} episodes"
    ax.set_title(f"{results['suite']} ({results['mode']}): {overall}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
