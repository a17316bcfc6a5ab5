"""Normalisation statistics: per-feature min/max/mean/std/count (+ 1st/99th percentiles).

Numeric features get statistics per dimension. Images get them per channel, on values scaled to
[0, 1] and shaped [3, 1, 1], as LeRobot stores them. Per-episode statistics aggregate into
dataset statistics exactly for mean/std/min/max (quantiles are count-weighted averages, an
approximation, as in LeRobot).
"""

from __future__ import annotations

import numpy as np

QUANTILES = {"q01": 0.01, "q99": 0.99}


def feature_stats(values: np.ndarray, is_image: bool = False) -> dict[str, np.ndarray]:
    """Statistics of `[N, ...]` values over the first axis (images: `[N, H, W, 3]` uint8)."""
    values = np.asarray(values)
    if len(values) == 0:
        raise ValueError("statistics of an empty feature are undefined")
    if is_image:
        if values.ndim != 4 or values.shape[-1] != 3:
            raise ValueError(f"image statistics need [N, H, W, 3], got {values.shape}")
        flat = values.reshape(-1, 3).astype(np.float64) / 255.0
        stats = _stats(flat)
        stats = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
        stats["count"] = np.array([len(values)])
        return stats
    flat = values.reshape(len(values), -1).astype(np.float64)
    stats = _stats(flat)
    stats = {k: v.reshape(values.shape[1:] or (1,)) for k, v in stats.items()}
    stats["count"] = np.array([len(values)])
    return stats


def _stats(flat: np.ndarray) -> dict[str, np.ndarray]:
    out = {
        "min": flat.min(axis=0),
        "max": flat.max(axis=0),
        "mean": flat.mean(axis=0),
        "std": flat.std(axis=0),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(flat, q, axis=0)
    return out


def aggregate_stats(per_episode: list[dict[str, dict]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine statistics of disjoint sets of frames (e.g. episodes) into those of their union."""
    keys = sorted({k for stats in per_episode for k in stats})
    out = {}
    for key in keys:
        parts = [
            {n: np.asarray(v, dtype=np.float64) for n, v in s[key].items()} for s in per_episode if key in s
        ]
        counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
        weights = counts / counts.sum()
        mean = sum(w * p["mean"] for w, p in zip(weights, parts, strict=True))
        # Law of total variance: within-part variance plus spread of the part means.
        var = sum(w * (p["std"] ** 2 + (p["mean"] - mean) ** 2) for w, p in zip(weights, parts, strict=True))
        agg = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(counts.sum())]),
        }
        for name in QUANTILES:
            if all(name in p for p in parts):
                agg[name] = sum(w * p[name] for w, p in zip(weights, parts, strict=True))
        out[key] = agg
    return out


def to_jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {k: {n: np.asarray(v).tolist() for n, v in s.items()} for k, s in stats.items()}


def from_jsonable(stats: dict) -> dict[str, dict[str, np.ndarray]]:
    return {k: {n: np.asarray(v, dtype=np.float64) for n, v in s.items()} for k, s in stats.items()}


def columns_stats(columns: dict[str, np.ndarray], keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Statistics over all frames of the named numeric columns (e.g. a dataset's `columns`)."""
    missing = [k for k in keys if k not in columns]
    if missing:
        raise KeyError(f"no column {missing}; available: {sorted(columns)}")
    return {k: feature_stats(np.asarray(columns[k]).reshape(len(columns[k]), -1)) for k in keys}
