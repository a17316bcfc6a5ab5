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


def trace_switch_changes(columns: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(at plan switches, within plans, at chunk switches) from one episode's ticks.csv columns
    (a0.., refined, chunk_switch, hold)."""
    if not len(columns.get("hold", ())):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    actions = np.stack(
        [np.asarray(v, float) for k, v in columns.items() if k[0] == "a" and k[1:].isdigit()], 1
    )
    hold = np.asarray(columns["hold"], float) > 0
    at_switch, within = action_changes(actions, np.asarray(columns["refined"], float) > 0, hold)
    return at_switch, within, action_changes(actions, np.asarray(columns["chunk_switch"], float) > 0, hold)[0]


def _quantiles(x: np.ndarray) -> dict:
    return {f"p{q}": round(float(np.percentile(x, q)), 5) if len(x) else None for q in QUANTILES}


def _ratio(a: dict, b: dict) -> float | None:
    return round(a["p90"] / b["p90"], 4) if a["p90"] is not None and b["p90"] else None


def switch_summary(at_switch, within, at_chunk_switch=()) -> dict:
    """Percentiles of |Δa| at plan switches, at the subset of them where a new chunk is taken up,
    within plans, and at every tick; the ratios of the first two's p90s to the within-plan p90 (1 =
    a switch is as smooth as any other tick). Every tick's figure is what a smoother that spreads a
    switch's jump over the next ticks (switch_blend) must lower too: it moves the jump into the
    within-plan ticks, which lowers the ratio by itself."""
    every = np.concatenate([np.asarray(at_switch, float), np.asarray(within, float)])
    s, w, c = (_quantiles(np.asarray(x, float)) for x in (at_switch, within, at_chunk_switch))
    return {
        "action_change_all": _quantiles(every),
        "action_change_switch": s,
        "action_change_chunk_switch": c,
        "action_change_within": w,
        "switch_ratio_p90": _ratio(s, w),
        "chunk_switch_ratio_p90": _ratio(c, w),
        "switch_ticks": len(at_switch),
        "chunk_switch_ticks": len(at_chunk_switch),
        "within_ticks": len(within),
    }


def episode_record(at_switch, within, at_chunk_switch=()) -> dict:
    """One episode's |Δa| values (for pooling over a run) and its own p90 ratio."""
    return {
        "switch_deltas": [round(float(x), 5) for x in at_switch],
        "chunk_switch_deltas": [round(float(x), 5) for x in at_chunk_switch],
        "within_deltas": [round(float(x), 5) for x in within],
        "switch_ratio_p90": switch_summary(at_switch, within)["switch_ratio_p90"],
    }


def pooled_summary(rows: list[dict]) -> dict | None:
    """switch_summary over every episode record in `rows` (None when none has one)."""
    rows = [r for r in rows if "switch_deltas" in r]
    if not rows:
        return None

    def pooled(key: str) -> np.ndarray:
        return np.concatenate([np.zeros(0), *(np.asarray(r.get(key, ()), float) for r in rows)])

    return switch_summary(pooled("switch_deltas"), pooled("within_deltas"), pooled("chunk_switch_deltas"))
