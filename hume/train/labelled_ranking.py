"""How well a policy's value head ranks candidates at one state, on labelled thinks.

The metric that decides whether a critic can choose: over the labelled thinks of a dataset
(hume/data/labels.py; ideally held out from its training), the share of candidate pairs with
different outcomes that the selection's value (the minimum over the target critics) orders right,
and how often the candidate the value head would choose succeeds, beside candidate 0 (the plain
sample), a uniform choice (the mean) and the best (the oracle). The `consensus` selector, which
needs no critic, is scored the same way from the candidates alone.
"""

from __future__ import annotations

import numpy as np
import torch

from hume.data.concat import open_datasets
from hume.data.labels import LabelledThinks
from hume.models.ranking import pairwise_accuracy
from hume.policy import HumePolicy
from hume.policy.selectors import consensus_scores
from hume.train.data import TrainingData


@torch.no_grad()
def candidate_values(policy: HumePolicy, data: TrainingData, batch: int = 32) -> np.ndarray:
    """[T, N]: the value head's selection value of every labelled think's candidates."""
    labels = data.labels
    if labels is None:
        raise ValueError(f"{data.root}: no labelled thinks (meta/labelled_thinks.jsonl)")
    out = []
    for rows in torch.arange(len(labels)).split(batch):
        frames = torch.from_numpy(labels.frame)[rows]
        obs = data.system2_inputs(frames, torch.Generator(), augment=False)
        prefix, mask = policy.system2.embed_prefix(
            obs["images"], obs["image_masks"], obs["tokens"], obs["token_masks"]
        )
        q = policy.value_head(prefix, mask, data.label_actions[rows], target=True)
        out.append(q.min(dim=0).values.float().numpy())
    return np.concatenate(out)


def rank_labelled_thinks(policy: HumePolicy, datasets: list[str], heldout_every: int = 0) -> dict:
    """The ranking of `policy`'s value head on the labelled thinks of `datasets` (read as one);
    with `heldout_every` k > 0 on those of the episodes that training with
    `ranking_heldout_every=k` held out (the same datasets, read together as training read them)."""
    data = TrainingData(open_datasets(datasets), policy.config, policy.normalizer, policy.tokenizer)
    if data.labels is None:
        raise ValueError(f"{data.root}: no labelled thinks (meta/labelled_thinks.jsonl)")
    if heldout_every:
        data.keep_labels(_held_out(data.labels, heldout_every, data.root))
    return ranking_of(candidate_values(policy, data), data.labels.rates, data.labels.episode)


def rank_by_consensus(datasets: list[str], heldout_every: int = 0) -> dict:
    """The same ranking for the `consensus` selector's scores (no critic, no model): of the
    labelled thinks of `datasets`, or with `heldout_every` k > 0 of those training would hold out."""
    dataset = open_datasets(datasets)
    labels = LabelledThinks.of(dataset)
    if labels is None:
        raise ValueError(f"{dataset.root}: no labelled thinks (meta/labelled_thinks.jsonl)")
    if heldout_every:
        labels = labels.subset(_held_out(labels, heldout_every, dataset.root))
    values = np.stack([consensus_scores(c) for c in labels.candidates])
    return ranking_of(values, labels.rates, labels.episode)


def ranking_of(values: np.ndarray, rates: np.ndarray, episodes: np.ndarray) -> dict:
    """Pairwise accuracy of `values` [T, N] against the candidates' success `rates` [T, N] (NaN: not
    tried), the success of the candidate the highest value would choose beside the baselines', and
    what choosing gains over candidate 0 with its interval over the thinks' `episodes` [T]."""
    right, pairs = pairwise_accuracy(torch.from_numpy(values), torch.from_numpy(rates))
    tried = ~np.isnan(rates)
    # A candidate never tried cannot be chosen: it scores as the lowest.
    chosen = np.argmax(np.where(tried, values, -np.inf), axis=1)
    rows = np.arange(len(rates))
    # What choosing gains over the plain sample, where candidate 0 was tried.
    gain = (rates[rows, chosen] - rates[:, 0])[tried[:, 0]]
    return {
        "thinks": len(rates),
        "pairs": pairs,
        "pairwise_accuracy": right / pairs if pairs else float("nan"),
        "success_of_chosen": float(np.mean(rates[rows, chosen])),
        "success_of_first": float(np.nanmean(rates[:, 0])),
        "success_of_uniform": float(np.mean(np.nanmean(rates, axis=1))),
        "success_of_best": float(np.mean(np.nanmax(rates, axis=1))),
        "gain_over_first": float(np.mean(gain)),
        "gain_over_first_ci95": episode_interval(gain, episodes[tried[:, 0]]),
    }


def episode_interval(per_think: np.ndarray, episodes: np.ndarray, resamples: int = 2000) -> list[float]:
    """95% interval of the mean of `per_think` by resampling whole episodes (seeded): the thinks of
    one episode share its scene and are not independent, so the episode is the unit."""
    ids, inverse = np.unique(episodes, return_inverse=True)
    sums = np.bincount(inverse, weights=per_think, minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids))
    draws = np.random.default_rng(0).integers(0, len(ids), size=(resamples, len(ids)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def _held_out(labels: LabelledThinks, every: int, root) -> np.ndarray:
    """The rows of the thinks training with `ranking_heldout_every=every` holds out; none: an error."""
    rows = np.flatnonzero(labels.held_out(every))
    if not len(rows):
        raise ValueError(f"{root}: heldout_every={every} holds out no labelled think")
    return rows
