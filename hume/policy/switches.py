"""How smooth the robot's actions are where a new plan takes over: the action change |Δa| at the
ticks that start a new plan (a chunk switch or System 1's refinement) against the ticks within one.

|Δa| is the Euclidean norm of the change of the motion dims (all but the last, the gripper, whose
open/close flips are the task's, not a discontinuity). Ticks that hold, or follow a hold, are left
out: resuming after a hold is not a switch. The same functions serve the evaluator (per episode and
per run) and a deployment's metrics.json (from ticks.csv), so the numbers compare.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (50, 90, 99)


def action_changes(actions, switch, hold) -> tuple[np.ndarray, np.ndarray]:
    """actions [T, d], switch [T] (this tick's action starts a new plan), hold [T] ->
    (|Δa| at switch ticks, |Δa| at ticks within a plan)."""
    actions = np.asarray(actions, np.float64)
    switch = np.asarray(switch, bool)
    hold = np.asarray(hold, bool)
    if len(actions) < 2:
        return np.zeros(0), np.zeros(0)
    delta = np.linalg.norm(np.diff(actions[:, :-1], axis=0), axis=1)
    steady = ~hold[1:] & ~hold[:-1]
    return delta[steady & switch[1:]], delta[steady & ~switch[1:]]


def _quantiles(x: np.ndarray) -> dict:
    return {f"p{q}": round(float(np.percentile(x, q)), 5) if len(x) else None for q in QUANTILES}


def switch_summary(at_switch, within) -> dict:
    """Percentiles of |Δa| at switches and within plans, and the ratio of their p90s (1 = a switch
    is as smooth as any other tick)."""
    at_switch, within = np.asarray(at_switch, float), np.asarray(within, float)
    s, w = _quantiles(at_switch), _quantiles(within)
    ratio = s["p90"] / w["p90"] if s["p90"] is not None and w["p90"] else None
    return {
        "action_change_switch": s,
        "action_change_within": w,
        "switch_ratio_p90": None if ratio is None else round(ratio, 4),
        "switch_ticks": len(at_switch),
        "within_ticks": len(within),
    }


def episode_record(at_switch, within) -> dict:
    """One episode's |Δa| values (for pooling over a run) and its own p90 ratio."""
    return {
        "switch_deltas": [round(float(x), 5) for x in at_switch],
        "within_deltas": [round(float(x), 5) for x in within],
        "switch_ratio_p90": switch_summary(at_switch, within)["switch_ratio_p90"],
    }


def pooled_summary(rows: list[dict]) -> dict | None:
    """switch_summary over every episode record in `rows` (None when none has one)."""
    rows = [r for r in rows if "switch_deltas" in r]
    if not rows:
        return None
    return switch_summary(
        np.concatenate([np.asarray(r["switch_deltas"], float) for r in rows]),
        np.concatenate([np.asarray(r["within_deltas"], float) for r in rows]),
    )
