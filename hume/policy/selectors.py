"""Which of a think's N candidate chunks to follow (HumeConfig.selector). Pure numpy.

An argmax over a noisy Q picks the candidates the critic overestimates (the winner's curse);
`lcb`, `softmax` and `gated` temper it. `coherence` and `consensus` need no critic: bidirectional
decoding's backward criterion (stay close to what the robot is already doing) and the candidates'
own agreement (the one nearest their mean, the mode rather than an outlier). `first` and `random`
are the baselines. `oracle` is decided outside the policy (the simulator tries each candidate,
sim/oracle.py); here it stands for "the choice handed in".
"""

from __future__ import annotations

import numpy as np

from hume.models.configuration_hume import HumeConfig


def choose(
    config: HumeConfig,
    q: np.ndarray | None,
    candidates: np.ndarray,
    reference: np.ndarray | None,
    rng: np.random.Generator,
) -> int:
    """The index of the candidate to follow.

    q: every target critic's value of every candidate [E, N]; None when the value head is off, and
        then the selectors that rank by it take candidate 0.
    candidates: the candidates in the model's normalised action space [N, H, action_dim].
    reference: the robot actions the chunk should continue, in the same space [k, action_dim]
        (k >= 0; aligned with the chunk's first k steps), for `coherence`.
    rng: draws of `random` and `softmax`.
    """
    n = len(candidates)
    selector = config.selector
    if selector in ("first", "oracle") or n == 1:
        return 0
    if selector == "random":
        return int(rng.integers(n))
    if selector == "coherence":
        return _most_coherent(candidates, reference)
    if selector == "consensus":
        return int(np.argmax(consensus_scores(candidates)))
    if q is None:
        return 0
    pessimistic = q.min(axis=0)
    if selector == "value":
        return int(np.argmax(pessimistic))
    if selector == "lcb":
        return int(np.argmax(q.mean(axis=0) - config.lcb_k * q.std(axis=0)))
    if selector == "softmax":
        logits = (pessimistic - pessimistic.max()) / config.softmax_temperature
        p = np.exp(logits)
        return int(rng.choice(n, p=p / p.sum()))
    if selector == "gated":
        best = int(np.argmax(pessimistic))
        return best if pessimistic[best] - pessimistic[0] > config.gated_margin else 0
    raise ValueError(f"unknown selector {selector!r}")


def _most_coherent(candidates: np.ndarray, reference: np.ndarray | None) -> int:
    """The candidate whose first k actions are closest (mean squared distance) to the k reference
    actions; candidate 0 when there is nothing to compare with (ties: the lowest index)."""
    if reference is None or len(reference) == 0:
        return 0
    k = min(len(reference), candidates.shape[1])
    gaps = ((candidates[:, :k] - reference[None, :k]) ** 2).mean(axis=(1, 2))
    return int(np.argmin(gaps))


def consensus_scores(candidates: np.ndarray) -> np.ndarray:
    """[N]: minus each candidate's distance (Euclidean over the whole chunk, in the normalised action
    space) to the mean of all N; `consensus` follows the highest, the one most of the policy's
    samples agree with (ties: the lowest index). Candidates far from the others are the flow's rare
    draws; on labelled thinks they succeeded least often (docs/results.md)."""
    flat = candidates.reshape(len(candidates), -1)
    return -np.linalg.norm(flat - flat.mean(axis=0), axis=1)
