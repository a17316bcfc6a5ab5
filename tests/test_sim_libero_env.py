"""The LIBERO adapter on the real simulator: task lookup, observation format, resets, errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.libero_env import (
    LiberoEnv,
    LiberoError,
    _from_renderer,
    get_task,
    max_steps_for,
    quat_to_axis_angle,
    suite_names,
    unavailable_suites,
)

ROOT = Path(__file__).resolve().parents[1]


def test_suites_and_step_limits():
    names = suite_names()
    for suite in ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"):
        assert suite in names
    assert any(n.startswith("libero_goal_") for n in names), "LIBERO-PRO variants are listed"
    assert [max_steps_for(s) for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10")] == [
        220,
        280,
        300,
        520,
    ]
    assert max_steps_for("libero_90") == 400
    assert max_steps_for("libero_10_with_mug") == 520
    assert max_steps_for("libero_goal_swap") == 300


def test_unknown_suite_and_task_list_valid_ones():
    with pytest.raises(LiberoError, match="libero_spatial"):
        get_task("libero_nope", 0)
    with pytest.raises(LiberoError, match="0..9"):
        get_task("libero_goal", 10)
    with pytest.raises(LiberoError, match="open_the_middle_drawer_of_the_cabinet"):
        get_task("libero_goal", "no_such_task")
    t = get_task("libero_goal", "open_the_middle_drawer_of_the_cabinet")
    assert get_task("libero_goal", t.task_id).name == t.name
    assert t.instruction == "open the middle drawer of the cabinet"
    assert t.init_states().shape[0] == 50


def test_runnable_suites_and_perturbed_instructions():
    names = suite_names()
    assert "libero_goal_lan" in names and "libero_goal_temp" not in names
    with pytest.raises(LiberoError, match="does not ship it whole: 10 of 10 tasks lack its BDDL file"):
        get_task("libero_goal_temp", 0)
    # Registered with its BDDL files and states, but the sticker's mesh is not in the package.
    assert "libero_object_with_trigger_new" not in names and "libero_object_with_mug" in names
    with pytest.raises(LiberoError, match="lack the asset custom_objects/red_sticker/red_sticker.xml"):
        get_task("libero_object_with_trigger_new", 0)
    assert unavailable_suites()["libero_object_with_red_box"].startswith("10 of 10 tasks lack the asset")
    # LIBERO-PRO's language and task perturbations rewrite the instruction; other variants keep it.
    assert get_task("libero_goal_lan", 0).instruction == "open the cabinet’s middle drawer"
    assert get_task("libero_goal_task", 1).instruction == "put the plate on the stove"
    assert get_task("libero_goal_swap", 1).instruction == get_task("libero_goal", 1).instruction


def test_axis_angle_matches_robosuite():
    from robosuite.utils.transform_utils import quat2axisangle

    rng = np.random.default_rng(0)
    for q in [*rng.normal(size=(20, 4)), np.array([0.0, 0, 0, 1]), np.array([1.0, 0, 0, 0])]:
        q = q / np.linalg.norm(q)
        np.testing.assert_allclose(quat_to_axis_angle(q), quat2axisangle(q.copy()), atol=1e-6)


@pytest.mark.slow
def test_state_only_env_resets_to_official_states():
    with LiberoEnv("libero_spatial", 0, cameras=False) as env:
        assert env.max_steps == 220 and env.num_init_states == 50
        obs = env.reset(0)
        assert set(obs) == {"observation.state", "task"}
        assert obs["observation.state"].dtype == np.float32 and obs["observation.state"].shape == (8,)
        assert obs["task"] == env.task.instruction
        for _ in range(5):
            moved, success = env.step(np.array([0.5, 0, 0, 0, 0, 0, -1.0]))
        assert not success and env.steps == 5
        assert moved["observation.state"][0] > obs["observation.state"][0] + 1e-3, "+x action moves the eef"
        np.testing.assert_allclose(env.reset(0)["observation.state"], obs["observation.state"], atol=1e-6)
        other = env.reset(1)["observation.state"]
        assert env.sim.data.qpos.shape[0] > 9, "the raw sim is reachable for scripted experts"
        with pytest.raises(ValueError, match="7 dims"):
            env.step(np.zeros(6))
    assert other.shape == (8,)


@pytest.mark.slow
def test_scene_reads_for_scripted_experts():
    with LiberoEnv("libero_spatial", 0, cameras=False) as env:
        state = env.reset(3)["observation.state"]
        np.testing.assert_allclose(env.eef_position, state[:3], atol=1e-6)
        np.testing.assert_allclose(quat_to_axis_angle(env.eef_quat), state[3:6], atol=1e-5)
        predicate, obj, target = env.goal[0]
        assert predicate.lower() == "on" and len(env.goal) == 1
        bodies = env.scene_bodies()
        assert {obj, target} <= set(bodies) and "flat_stove_1" in bodies, "objects and fixtures"
        assert all(env.sim.model.body_name2id(body) >= 0 for body in bodies.values())
        low, high = env.action_limits
        np.testing.assert_array_equal(low, -np.ones(7))
        np.testing.assert_array_equal(high, np.ones(7))


@pytest.mark.slow
def test_camera_images_are_rotated_uint8():
    with LiberoEnv("libero_object", 1, image_size=64, fast_render=True) as env:
        obs = env.reset(2, wait_steps=1)
        for cam, raw_key in (("agentview", "agentview_image"), ("wrist", "robot0_eye_in_hand_image")):
            img = obs[f"observation.images.{cam}"]
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
            np.testing.assert_array_equal(img, env.raw_obs[raw_key][::-1, ::-1])
            assert img.std() > 5, "a real rendered image, not a blank one"


def test_a_missing_asset_is_not_blamed_on_the_renderer(monkeypatch):
    """A scene whose object mesh is missing fails as the FileNotFoundError it is."""
    import dataclasses

    from libero.libero import benchmark

    import sim.libero_env as libero_env

    stickered = benchmark.get_benchmark_dict()["libero_object_with_trigger_new"]().get_task_bddl_file_path(0)
    task = dataclasses.replace(get_task("libero_object", 0), bddl_file=stickered)
    monkeypatch.setattr(libero_env, "get_task", lambda suite, t: task)
    with pytest.raises(FileNotFoundError) as err:
        LiberoEnv("libero_object", 0, cameras=False)
    assert not _from_renderer(err.value)


def test_broken_renderer_names_debian_packages():
    code = "from sim.libero_env import LiberoEnv; LiberoEnv('libero_spatial', 0, image_size=32)"
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if r.returncode == 0:
        pytest.skip("OSMesa is installed here, so it cannot stand in for a broken renderer")
    assert "RendererError" in r.stderr
    assert "libegl1 libegl-mesa0 libgl1-mesa-dri" in r.stderr
