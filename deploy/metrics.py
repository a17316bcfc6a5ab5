"""metrics.json and the latency plot of a deployment, from what the two nodes wrote on exit.

Inputs (in the run folder): ticks.csv (one row per control tick, System 1), system1.json and
system2.json (node summaries) and robot.json (the robot driver's watchdog record), as far as they
got: System 1 streams its two while it runs, so a killed System 1 still leaves all but its last
second, and the robot driver, which outlives it, writes its own on every hold. `tick_ms` is the
policy's share of a tick (observation in hand -> action out); `sim_step_ms` is the
robot/simulator's share (observe + act); `tick_total_ms` the whole tick, which the deadline (one
control period) applies to.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np

from hume.policy.switches import switch_summary, trace_switch_changes


def percentiles(values, *qs: int, keep_max: bool = False) -> dict[str, float | None]:
    """{"p50": ..., ...} rounded to 3 decimals (None for no values), and "max" with keep_max."""
    a = np.asarray(values, dtype=np.float64)
    out: dict[str, float | None]
    if a.size == 0:
        out = {f"p{q}": None for q in qs}
        return {**out, "max": None} if keep_max else out
    out = {f"p{q}": round(float(np.percentile(a, q)), 3) for q in qs}
    if keep_max:
        out["max"] = round(float(a.max()), 3)
    return out


def read_ticks(path: Path) -> dict[str, np.ndarray]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    cols = rows[0].keys() if rows else next(csv.reader(path.open()), [])
    # A row cut short by a crash (the last line of a killed System 1) is left out.
    rows = [r for r in rows if None not in r.values() and "" not in r.values()]
    return {c: np.asarray([float(r[c]) for r in rows]) for c in cols}


def compute_metrics(run: Path) -> dict:
    s1 = json.loads((run / "system1.json").read_text())
    s2_path = run / "system2.json"
    s2 = json.loads(s2_path.read_text()) if s2_path.is_file() else {}
    # The robot driver's own record: it outlives System 1, so it knows of a hold System 1 did not.
    robot_path = run / "robot.json"
    robot = json.loads(robot_path.read_text()) if robot_path.is_file() else {}
    ticks = read_ticks(run / "ticks.csv")
    deadline_ms = 1e3 / s1["control_hz"]
    ages = ticks["chunk_age"][ticks["chunk_age"] >= 0]
    # System 2's own record when it shut down cleanly, else the think times its chunks carried.
    think = s2.get("think_ms") or s1["think_ms"]
    episodes = s1["episodes"]
    total = ticks["tick_total_ms"]
    misses = int((total > deadline_ms).sum())
    n_ticks = len(total)
    acting = ticks["obs_age"] >= 0
    periods = ticks["period_ms"][ticks["period_ms"] > 0]  # each episode's first tick has none
    return {
        "episodes": len(episodes),
        "successes": sum(e["success"] for e in episodes),
        "ticks": int(s1["ticks"]),
        "control_hz": s1["control_hz"],
        "tick_ms": percentiles(ticks["tick_ms"], 50, 99, keep_max=True),
        "tick_total_ms": percentiles(total, 50, 99, keep_max=True),
        "deadline_ms": round(deadline_ms, 3),
        # Ticks whose whole (observe + decide + act) ran past the period: the loop's overruns.
        "deadline_misses": misses,
        "deadline_misses_per_1000_ticks": round(1000 * misses / n_ticks, 2) if n_ticks else None,
        "overruns": misses,
        "overrun_ms": percentiles(total[total > deadline_ms] - deadline_ms, 50, 99, keep_max=True),
        # Of those, the ticks whose policy share alone ran past the period.
        "policy_overruns": int((ticks["tick_ms"] > deadline_ms).sum()),
        "achieved_rate_hz": round(1e3 / float(periods.mean()), 3) if len(periods) else None,
        # How old the observation System 1 refined each executed action on was.
        "observation_age_ticks": percentiles(ticks["obs_age"][acting], 50, 99, keep_max=True),
        "observation_age_ms": percentiles(ticks["obs_age_ms"][acting], 50, 99, keep_max=True),
        "refine_ahead": s1.get("refine_ahead"),
        "refine_lead_ticks": s1.get("refine_lead_ticks"),
        "refine_ms": percentiles(s1.get("refine_ms", []), 50, 99, keep_max=True),
        "refine_late": s1.get("refine_late", 0),
        "chunks_received": s1["chunks_received"],
        "chunk_age_steps": {
            k: v if v is None else int(v) for k, v in percentiles(ages, 50, keep_max=True).items()
        },
        "chunk_ttl_steps": s1["chunk_ttl_steps"],
        "s2_think_ms": percentiles(think, 50, 99),
        "holds": s1["holds"],
        "hold_ticks": s1["hold_ticks"],
        "dropped_messages": int(s1.get("dropped", 0) + s2.get("dropped", 0)),
        "dropped_by_reason": _dropped_by_reason(s1, s2),
        "refine_errors": s1.get("refine_errors", 0),
        # Times the robot's driver held the robot by itself: no command for watchdog_s, or System 1 gone.
        "watchdog_s": robot.get("watchdog_s", s1.get("watchdog_s")),
        "watchdog_holds": max(robot.get("watchdog_holds", 0), s1.get("watchdog_holds", 0)),
        "system2_errors": s1.get("system2_errors", 0),
        # What the action envelope did to the actions sent: counts, and the limits it applied.
        "envelope": s1.get("envelope"),
        "superseded_observations": s2.get("superseded"),
        "sim_step_ms": percentiles(ticks["sim_step_ms"], 50, 99, keep_max=True),
        # |Δa| of the actions sent where a new plan took over vs within plans (hume/policy/switches.py).
        **_switches(ticks),
        "model_id": s1["model_id"],
        "episode_results": episodes,
    }


def _switches(ticks: dict[str, np.ndarray]) -> dict:
    parts = [
        trace_switch_changes({k: v[ticks["episode"] == e] for k, v in ticks.items()})
        for e in np.unique(ticks.get("episode", []))
    ]
    return switch_summary(*(np.concatenate([np.zeros(0), *(p[i] for p in parts)]) for i in range(3)))


def _dropped_by_reason(*summaries: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for summary in summaries:
        for key, count in summary.items():
            if key.startswith("dropped_"):
                out[key.removeprefix("dropped_")] = out.get(key.removeprefix("dropped_"), 0) + int(count)
    return dict(sorted(out.items()))


# pyplot's state (current figure, mathtext cache) is global and not thread-safe, and the
# evaluator's policy-server workers finish their deployments in threads.
_PLOT_LOCK = threading.Lock()


def plot(run: Path, path: Path) -> None:
    """Tick latency (against the deadline) and the age of the chunk in use, over control ticks."""
    with _PLOT_LOCK:
        _plot(run, path)


def _plot(run: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s1 = json.loads((run / "system1.json").read_text())
    t = read_ticks(run / "ticks.csv")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax1.plot(t["tick"], t["tick_ms"], lw=0.8, label="tick (policy share)")
    ax1.plot(t["tick"], t["sim_step_ms"], lw=0.8, alpha=0.6, label="simulator step")
    ax1.axhline(1e3 / s1["control_hz"], color="r", ls="--", lw=0.8, label="deadline")
    ax1.set_yscale("log")
    ax1.set_ylabel("ms")
    ax1.legend(loc="upper right", fontsize=8)
    age = np.where(t["chunk_age"] >= 0, t["chunk_age"], np.nan)
    ax2.plot(t["tick"], age, lw=0.8, label="chunk age")
    ax2.axhline(s1["chunk_ttl_steps"], color="r", ls="--", lw=0.8, label="TTL")
    held = t["hold"] > 0
    if held.any():
        ax2.fill_between(
            t["tick"], 0, s1["chunk_ttl_steps"], where=held, color="orange", alpha=0.3, label="hold"
        )
    ax2.set_xlabel("control tick")
    ax2.set_ylabel("steps")
    ax2.legend(loc="upper right", fontsize=8)
    fig.suptitle("Hume deployment: tick latency and chunk age")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
