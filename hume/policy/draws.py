"""Draws: the random streams a think samples from, owned by whoever runs an episode (or a server).

Two streams, apart so that choosing never shifts the noise: `noise` (torch) gives each think's
candidate seeds, `choices` (numpy) the random and softmax selectors' picks. The policy keeps none
of an episode's: the synchronous loop (hume/policy/sync_loop.py) and the evaluator's virtual clock
each own theirs and seed them per episode, so a seed fixes an episode whatever else the policy did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Draws:
    noise: torch.Generator
    choices: np.random.Generator

    @classmethod
    def seeded(cls, seed: int) -> Draws:
        noise = torch.Generator()
        noise.manual_seed(seed)
        return cls(noise, np.random.default_rng([seed, 1]))

    def save(self) -> dict:
        """Both streams' positions, by value (a branch point to come back to)."""
        return {"noise": self.noise.get_state(), "choices": copy.deepcopy(self.choices)}

    def restore(self, saved: dict) -> None:
        self.noise.set_state(saved["noise"])
        self.choices = copy.deepcopy(saved["choices"])
