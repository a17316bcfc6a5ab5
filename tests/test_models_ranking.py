"""Ranking candidates at one state: Bradley-Terry over pairs with different outcomes, and the
share of such pairs a value orders right."""

import math

import torch

from hume.models.ranking import bradley_terry_loss, pairwise_accuracy, preference_pairs

NAN = float("nan")


def test_pairs_are_the_comparisons_with_different_outcomes_among_tried_candidates():
    rates = torch.tensor([[1.0, 0.0, 0.5, NAN], [0.0, 0.0, 0.0, 0.0]])
    pairs = preference_pairs(rates)
    assert pairs[0].nonzero().tolist() == [[0, 1], [0, 2], [2, 1]]
    assert not pairs[1].any(), "equal outcomes compare nothing"


def test_bradley_terry_is_the_mean_negative_log_likelihood_of_the_observed_orders():
    rates = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])  # critic 0 right by 2, critic 1 wrong by 1
    expected = (-math.log(1 / (1 + math.exp(-2.0))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    assert math.isclose(float(bradley_terry_loss(q, rates)), expected, rel_tol=1e-6)


def test_its_gradient_raises_the_better_candidate_and_lowers_the_worse():
    q = torch.zeros(2, 1, 3, requires_grad=True)
    bradley_terry_loss(q, torch.tensor([[0.0, 1.0, NAN]])).backward()
    assert (q.grad[:, 0, 1] < 0).all() and (q.grad[:, 0, 0] > 0).all() and (q.grad[:, 0, 2] == 0).all()


def test_no_comparison_gives_zero_loss_with_a_graph():
    q = torch.ones(2, 3, 4, requires_grad=True)
    loss = bradley_terry_loss(q, torch.full((3, 4), 0.5))
    loss.backward()
    assert float(loss.detach()) == 0.0 and (q.grad == 0).all()


def test_pairwise_accuracy_counts_ties_as_half():
    rates = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, NAN]])
    values = torch.tensor([[0.5, 0.1, 0.9], [0.2, 0.2, 5.0]])
    # think 0: (0>1) right, (0>2) wrong; think 1: (0>1) a tie
    assert pairwise_accuracy(values, rates) == (1.5, 3)
    assert pairwise_accuracy(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[NAN, 0.0, 0.0]])) == (0, 0)
