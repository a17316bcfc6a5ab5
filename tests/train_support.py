"""A tiny LeRobot dataset and a tiny model config for training tests (no simulator needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml

from hume.config import to_dict
from hume.data import LeRobotWriter
from hume.data.format import libero_features
from hume.data.labels import LABELS_FILE
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system1 import System1Config
from hume.models.configuration_system2 import System2Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig

CAMERAS = ("agentview", "wrist")
TASKS = ("put the bowl on the plate", "open the drawer")


def write_tiny_dataset(root: Path, episodes: int = 3, length: int = 20, image_size: int = 32) -> Path:
    """Episodes whose actions are a smooth function of time and of the task, seen in the images
    (a bright square that moves with the state); the last episode fails (reward 0)."""
    writer = LeRobotWriter(root, fps=20, features=libero_features(image_size, 20, CAMERAS))
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        task = ep % len(TASKS)
        t = np.arange(length, dtype=np.float32) / length
        phase = rng.uniform(0, np.pi)
        state = np.stack([np.sin(2 * t + phase + k) for k in range(8)], 1).astype(np.float32)
        action = np.stack([np.cos(3 * t + phase + k) * (1 + task) for k in range(7)], 1).astype(np.float32)
        images = np.zeros((length, image_size, image_size, 3), np.uint8)
        for i in range(length):
            x = int((state[i, 0] + 1) / 2 * (image_size - 8))
            images[i, 4:12, x : x + 8, task] = 255
            images[i, ..., 2] += np.uint8(40 * ep)
        success = ep < episodes - 1
        reward = np.zeros(length, np.float32)
        reward[-1] = float(success)
        frames = {
            "observation.images.agentview": images,
            "observation.images.wrist": images[:, ::-1].copy(),
            "observation.state": state,
            "action": action,
            "next.reward": reward,
            "next.done": np.arange(length) == length - 1,
            "next.success": (np.arange(length) == length - 1) & success,
        }
        writer.add_episode(ep, TASKS[task], frames, success=success)
    writer.finalize()
    return root


def tiny_model_config() -> HumeConfig:
    """Smaller still than configs/model/tiny.yaml: a training step takes a fraction of a second."""
    return HumeConfig(
        system2=System2Config(
            vision_width=32,
            vision_depth=1,
            vision_heads=2,
            vision_mlp_dim=64,
            patch_size=8,
            vlm_width=64,
            vlm_depth=2,
            vlm_mlp_dim=128,
            num_heads=2,
            num_kv_heads=1,
            head_dim=16,
            expert_width=32,
            expert_mlp_dim=64,
            max_token_len=12,
        ),
        value_head=ValueQueryHeadConfig(
            width=32,
            num_layers=1,
            num_heads=2,
            head_dim=16,
            intermediate_size=64,
            action_steps=4,
            critic_hidden=(32, 32),
            actor_hidden=(32, 32),
            cql_num_samples=2,
        ),
        system1=System1Config(
            vision_hidden_size=32,
            vision_num_layers=1,
            vision_num_heads=2,
            patch_size=16,
            vision_pos_grid=32,
            width=32,
            num_layers=1,
            num_heads=2,
            head_dim=16,
            intermediate_size=64,
        ),
        image_size=32,
        num_candidates=2,
    )


def write_model_config(path: Path, config: HumeConfig | None = None) -> Path:
    path.write_text(yaml.safe_dump(to_dict(config or tiny_model_config())))
    return path


def replace(config, **changes):
    return dataclasses.replace(config, **changes)


def write_labels(root: Path, seed: int, frames=(0, 4, 8, 12, 16), episodes: int = 3) -> None:
    """Four candidates per think; one succeeds exactly when its first actions push +x (a rule of
    the candidate alone, which a critic can learn), and every think has both outcomes. Episode k
    does task k % 2, as write_tiny_dataset's."""
    rng = np.random.default_rng(seed)
    rows = []
    for episode in range(episodes):
        for frame in frames:
            candidates = rng.normal(size=(4, 16, 7))
            candidates[0, :4, 0] = np.abs(candidates[0, :4, 0]) + 0.5
            candidates[1, :4, 0] = -np.abs(candidates[1, :4, 0]) - 0.5
            good = candidates[:, :4, 0].mean(axis=1) > 0
            rows.append(
                {
                    "episode_index": episode,
                    "frame_index": frame,
                    "task_index": episode % 2,
                    "candidates": candidates.round(4).tolist(),
                    "outcomes": [[[int(g), 20]] for g in good],
                    "chosen": int(np.argmax(good)),
                }
            )
    (root / LABELS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
