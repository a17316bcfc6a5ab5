"""Ranking candidates at one state: the Bradley–Terry loss and pairwise accuracy. Pure functions.

A critic that chooses among candidates must order them at the same state; recognising good
states (pointwise AUC) says nothing about that. From a labelled think (every candidate tried in
the simulator, each with a success rate over its continuations) every pair with different rates
is a comparison: Bradley–Terry asks P(i beats j) = sigmoid(Q_i - Q_j) (as RoboMonkey's verifier).

Shapes: E critics, B states (thinks), N candidates; rates NaN where a candidate was not tried.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def preference_pairs(rates: Tensor) -> Tensor:
    """[B, N, N] bool: candidate i did better than candidate j at the same state."""
    tried = ~torch.isnan(rates)
    filled = torch.nan_to_num(rates, nan=0.0)
    both = tried[:, :, None] & tried[:, None, :]
    return both & (filled[:, :, None] > filled[:, None, :])


def bradley_terry_loss(q: Tensor, rates: Tensor) -> Tensor:
    """Mean over every critic and every ordered pair of -log sigmoid(Q_better - Q_worse);
    q [E, B, N], rates [B, N]. 0 (with a gradient path) when no pair differs."""
    pairs = preference_pairs(rates)
    margin = q[:, :, :, None] - q[:, :, None, :]  # [E, B, N, N]: Q_i - Q_j
    losses = -F.logsigmoid(margin)[:, pairs]
    return losses.mean() if losses.numel() else q.sum() * 0.0


def pairwise_accuracy(values: Tensor, rates: Tensor) -> tuple[float, int]:
    """(pairs ordered right, pairs) over the comparisons of `rates` [B, N] by `values` [B, N]; a
    tie in value counts half."""
    pairs = preference_pairs(rates)
    margin = values[:, :, None] - values[:, None, :]
    right = (margin[pairs] > 0).float() + 0.5 * (margin[pairs] == 0).float()
    return float(right.sum()), int(pairs.sum())
