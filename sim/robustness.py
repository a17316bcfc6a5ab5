"""A suite and its LIBERO-PRO variants in one command: what each perturbation costs the policy.

The suite runs in DIR as any evaluation does (DIR/results.json), each variant in
DIR/variants/NAME with the same tasks, episodes, seeds and policy; every run resumes on its own.
DIR/robustness.json, .md and .png then show, per variant, success with its Wilson interval and the
drop vs the suite in percentage points.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path

from hume.config import ConfigError
from sim.evaluator import evaluate
from sim.libero_env import base_suite, check_suite, suite_names, task_names, unavailable_suites
from sim.report import write_json

log = logging.getLogger(__name__)

ALL = "all"


def _is_variant(name: str, suite: str) -> bool:
    return name != suite and base_suite(name) == suite


def variants_of(suite: str, wanted: str) -> list[str]:
    """The variants `wanted` names (comma-separated); "all": every variant the package ships whole
    with the suite's task count (its tasks perturbed one for one; `left_out` says which are not)."""
    check_suite(suite)
    if base_suite(suite) != suite:
        raise ConfigError(
            f"variants are evaluated beside a standard suite; {suite} is a variant of {base_suite(suite)}"
        )
    if wanted.strip() == ALL:
        n = len(task_names(suite))
        return [v for v in suite_names() if _is_variant(v, suite) and len(task_names(v)) == n]
    names = [v.strip() for v in wanted.split(",") if v.strip()]
    for v in names:
        check_suite(v)
        if not _is_variant(v, suite):
            raise ConfigError(f"{v} is not a LIBERO-PRO variant of {suite} (variants=all runs every one)")
    return names


def left_out(suite: str) -> dict[str, str]:
    """The suite's registered variants that "all" does not run, each with why: not shipped whole
    (a BDDL file, initial states or an asset missing) or a different number of tasks."""
    n = len(task_names(suite))
    why = {v: reason for v, reason in unavailable_suites().items() if _is_variant(v, suite)}
    for v in suite_names():
        if _is_variant(v, suite) and len(task_names(v)) != n:
            why[v] = f"{len(task_names(v))} tasks, not the suite's {n}"
    return dict(sorted(why.items()))


def session(cfg, out: Path):
    """One Ray for all the runs (a private one starts once, not per variant); nothing for local."""
    if cfg.backend != "ray":
        return contextlib.nullcontext()
    from sim.ray_session import ray_session

    return ray_session(cfg, out)


def table(suite: str, results: dict[str, dict]) -> list[dict]:
    """One row per suite (the base first): episodes, successes, rate, interval, drop vs the base."""
    base = results[suite]["success_rate"]
    return [
        {
            "suite": name,
            **{k: r[k] for k in ("episodes", "successes", "success_rate", "ci95")},
            "drop_pp": None if name == suite else round(100 * (base - r["success_rate"]), 1),
        }
        for name, r in results.items()
    ]


def markdown(rows: list[dict], left: dict[str, str] | None = None) -> str:
    base = rows[0]["suite"]
    lines = [f"| suite | episodes | success | 95% CI | drop vs {base} |", "|---|---:|---:|---|---:|"]
    for r in rows:
        lo, hi = r["ci95"]
        drop = "—" if r["drop_pp"] is None else f"{r['drop_pp']:.1f} pp"
        lines.append(
            f"| {r['suite']} | {r['episodes']} | {r['successes']} ({r['success_rate']:.1%}) "
            f"| [{lo:.1%}, {hi:.1%}] | {drop} |"
        )
    if left:
        lines += ["", f"Variants of {base} left out:"] + [f"- {name}: {why}" for name, why in left.items()]
    return "\n".join(lines) + "\n"


def write_chart(path: Path, rows: list[dict]) -> None:
    """Horizontal bars of success per suite, Wilson intervals as error bars, the base's rate dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [100 * r["success_rate"] for r in rows]
    err = [
        [100 * (r["success_rate"] - r["ci95"][0]) for r in rows],
        [100 * (r["ci95"][1] - r["success_rate"]) for r in rows],
    ]
    ys = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(rows)))
    colors = ["#c05030"] + ["#4878a8"] * (len(rows) - 1)
    ax.barh(ys, rates, xerr=err, capsize=3, color=colors)
    ax.axvline(rates[0], color="#c05030", linestyle="--", linewidth=1)
    ax.set_yticks(ys, [r["suite"] for r in rows])
    ax.set_xlim(0, 105)
    ax.set_xlabel("success (%), Wilson 95% interval")
    ax.set_title(f"{rows[0]['suite']} and its LIBERO-PRO variants\n{rows[0]['episodes']} episodes each")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_variants(cfg, policy_factory=None, run_units=None) -> dict:
    """Evaluate `cfg.suite` and its `cfg.variants`; returns what DIR/robustness.json holds."""
    names = variants_of(cfg.suite, cfg.variants)
    left = left_out(cfg.suite) if cfg.variants.strip() == ALL else {}
    out = Path(cfg.output)
    runs = {cfg.suite: dataclasses.replace(cfg, variants="")}
    for name in names:
        runs[name] = dataclasses.replace(cfg, suite=name, variants="", output=str(out / "variants" / name))
    log.info("evaluating %s and %d variants: %s", cfg.suite, len(names), ", ".join(names))
    for name, why in left.items():
        log.warning("left out %s: %s", name, why)
    with session(cfg, out):
        results = {name: evaluate(run, policy_factory, run_units) for name, run in runs.items()}
    rows = table(cfg.suite, results)
    report = {"suite": cfg.suite, "mode": cfg.mode, "variants": rows, "left_out": left}
    write_json(out / "robustness.json", report)
    (out / "robustness.md").write_text(markdown(rows, left))
    write_chart(out / "robustness.png", rows)
    return report
