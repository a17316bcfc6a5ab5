"""Steps whose images no one reads skip the camera renders (sim/libero_env.py, `step(render=False)`;
sim/episode.py): the same episode, action for action, with a fraction of the renders."""

import numpy as np
import pytest

from hume.constants import IMAGE_KEY
from hume.policy import HumePolicy
from hume.policy.sync_loop import SyncLoop
from sim.episode import needs_images_next
from sim.libero_env import CAMERAS, LiberoEnv

CHECKPOINT = "checkpoints/default"


def episode(env: LiberoEnv, loop: SyncLoop, skip: bool) -> tuple[list, list]:
    """40 steps of task 2 from official state 0; the actions and every observation."""
    obs, actions, observations = env.reset(0), [], []
    loop.reset(seed=3)
    for _ in range(40):
        action = loop.select_action(obs)
        actions.append(action)
        obs, _ = env.step(action, render=not skip or needs_images_next(loop))
        observations.append(obs)
    return actions, observations


@pytest.mark.slow
def test_skipping_unread_renders_changes_nothing_the_policy_sees():
    loop = SyncLoop(HumePolicy.from_pretrained(CHECKPOINT))
    with LiberoEnv("libero_object", 2, image_size=64, fast_render=True) as env:
        always_actions, always = episode(env, loop, skip=False)
        skip_actions, skipped = episode(env, loop, skip=True)
    np.testing.assert_array_equal(np.array(skip_actions), np.array(always_actions))
    images = [IMAGE_KEY.format(cam) for cam in CAMERAS]
    rendered = [i for i, obs in enumerate(skipped) if images[0] in obs]
    # Think every 16 steps, refine every 8: the observations of steps 7, 15, 23, 31 and 39 are read.
    assert rendered == [7, 15, 23, 31, 39]
    for i, (a, b) in enumerate(zip(always, skipped, strict=True)):
        np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
        if i in rendered:
            for key in images:
                np.testing.assert_array_equal(a[key], b[key])
        else:
            assert not set(images) & set(b), "a skipped step's observation must not carry images"


def test_a_policy_that_says_nothing_gets_every_image():
    assert needs_images_next(object()) is True
