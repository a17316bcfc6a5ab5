"""The batching policy of a System 2 serving many clients (hume/runtime/batching.py)."""

import pytest

from hume.runtime.batching import Batcher


def test_one_client_with_no_wait_is_answered_at_once():
    b = Batcher(max_batch=8, max_wait_s=0.0)
    assert b.due_in(0.0) is None
    b.add("a", "obs1", now=1.0)
    assert b.due_in(1.0) == 0.0
    assert b.take() == [("a", "obs1")]
    assert b.due_in(1.0) is None and len(b) == 0


def test_newest_observation_per_client_only():
    b = Batcher(max_batch=8, max_wait_s=0.0)
    assert [b.add("a", f"a{i}", now=float(i)) for i in range(3)] == [False, True, True]
    assert b.add("b", "b0", now=3.0) is False
    assert b.take() == [("a", "a2"), ("b", "b0")]


def test_waits_at_most_max_wait_for_more_clients():
    b = Batcher(max_batch=3, max_wait_s=0.010)
    b.add("a", 1, now=5.0)
    assert b.due_in(5.0) == pytest.approx(0.010)
    b.add("b", 2, now=5.004)
    assert b.due_in(5.004) == pytest.approx(0.006)  # from the first one's arrival, not the last
    assert b.due_in(5.020) == 0.0
    b.add("c", 3, now=5.005)
    assert b.due_in(5.005) == 0.0  # full: no reason to wait
    assert [c for c, _ in b.take()] == ["a", "b", "c"]


def test_a_full_batch_leaves_the_newest_clients_for_the_next_think():
    b = Batcher(max_batch=2, max_wait_s=0.0)
    b.add("a", 1, now=0.0)
    b.add("b", 1, now=1.0)
    b.add("c", 1, now=2.0)
    b.add("a", 2, now=3.0)  # a newer observation does not lose a's place in the queue
    assert b.take() == [("a", 2), ("b", 1)]
    b.add("a", 3, now=4.0)
    assert b.take() == [("c", 1), ("a", 3)]  # c, left out once, goes first


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Batcher(max_batch=0, max_wait_s=0.0)
    with pytest.raises(ValueError):
        Batcher(max_batch=1, max_wait_s=-1.0)
