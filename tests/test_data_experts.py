"""Scripted experts: their geometry, which tasks they take, and a real LIBERO episode
solved by the expert and one spoiled on purpose by its mistake noise."""

import numpy as np
import pytest

from sim.experts.base import ExpertNoise
from sim.experts.geometry import narrowest_direction, quat_multiply, rotation_error, yaw_quat
from sim.experts.pick_place import _grasp_point, _hand_clearance


def test_rotation_error_recovers_a_known_turn():
    start = np.array([1.0, 0.0, 0.0, 0.0])  # gripper pointing down, as in LIBERO
    target = quat_multiply(yaw_quat(0.3), start)
    np.testing.assert_allclose(rotation_error(target, start), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(rotation_error(start, start), [0, 0, 0], atol=1e-12)
    # q and -q are the same rotation: the error takes the short way.
    np.testing.assert_allclose(rotation_error(-target, start), [0, 0, 0.3], atol=1e-9)


def test_narrowest_direction_of_a_box():
    xs, ys, zs = np.meshgrid([-0.04, 0.04], [-0.01, 0.01], [0, 0.02])
    corners = np.stack([xs.ravel(), ys.ravel(), zs.ravel()], axis=1)
    direction, width, widest = narrowest_direction(corners)
    assert abs(direction[1]) == pytest.approx(1.0) and width == pytest.approx(0.02)
    assert widest == pytest.approx(np.hypot(0.08, 0.02), rel=0.05)


def test_rim_grasp_sits_on_the_ring_of_geoms():
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    centers = np.stack([0.05 * np.cos(angles), 0.05 * np.sin(angles), np.full(16, 0.05)], axis=1)
    corners = np.concatenate([centers + [0.01, 0.01, 0.01], centers - [0.01, 0.01, 0.01], [[0, 0, 0]]])
    point = _grasp_point(corners, centers, np.array([0.0, 1.0]), rim_side=-1.0)
    np.testing.assert_allclose(point[:2], [0, -0.05], atol=1e-9)
    assert point[2] == pytest.approx(0.06 - 0.02)  # 2 cm below the rim's top there
    centred = _grasp_point(corners, centers, np.array([0.0, 1.0]), rim_side=0.0)
    np.testing.assert_allclose(centred[:2], [0, 0], atol=1e-9)


def test_hand_clearance_sees_obstacles_along_the_fingers():
    point, axis = np.zeros(3), np.array([1.0, 0.0])
    beside = np.array([[0.0, 0.10]])  # 10 cm across the fingers: clear of the 4.5 cm half-width
    ahead = np.array([[0.08, 0.0]])  # 8 cm along the fingers: under the 11 cm half-length
    assert _hand_clearance(point, axis, beside) == pytest.approx(0.055)
    assert _hand_clearance(point, axis, ahead) < 0
    assert _hand_clearance(point, axis, np.zeros((0, 2))) == np.inf


def test_noise_is_validated():
    with pytest.raises(ValueError, match="speed_range"):
        ExpertNoise(speed_range=(0.5, 1.5)).validate()
    with pytest.raises(ValueError):
        ExpertNoise(mistake_prob=2.0).validate()


def test_supported_tasks():
    from sim.experts import UnsupportedTask, check_supported
    from sim.libero_env import get_task

    for suite in ("libero_object", "libero_spatial"):
        for task_id in range(10):
            check_supported(get_task(suite, task_id))
    for task_id in (1, 2, 4, 5, 6, 8, 9):
        check_supported(get_task("libero_goal", task_id))
    for task_id in (0, 3, 7):  # open a drawer, open it and put a bowl in, turn on the stove
        with pytest.raises(UnsupportedTask, match=f"task {task_id}"):
            check_supported(get_task("libero_goal", task_id))


def test_has_expert_is_for_served_tasks_only():
    from sim.remote.client import RemoteTask
    from sim.suites import has_expert

    with pytest.raises(ValueError, match="runs in LIBERO"):
        has_expert(RemoteTask("libero_spatial", 0, "a LIBERO task", "pick up the bowl"))


@pytest.mark.slow
def test_expert_solves_a_task_and_its_mistake_fails_it():
    from sim.episode import run_episode
    from sim.experts import make_expert
    from sim.libero_env import LiberoEnv

    with LiberoEnv("libero_object", 0, cameras=False) as env:
        clean = run_episode(env, make_expert(env, ExpertNoise(), seed=0), init_state=3)
        assert clean.success and clean.steps < env.max_steps
        spoiled = run_episode(env, make_expert(env, ExpertNoise(mistake_prob=1.0), seed=0), init_state=3)
        assert not spoiled.success and spoiled.steps == env.max_steps
