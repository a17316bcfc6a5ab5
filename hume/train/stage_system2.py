"""Stage `system2`: flow matching of System 2 (the VLM and its action expert) on dataset chunks.

Only System 2 trains; the vision tower can stay frozen (Hume keeps SigLIP frozen). The value-query
head and System 1 keep their weights and are trained by stage `system1_value`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hume.policy import HumePolicy
from hume.train.config import TrainConfig
from hume.train.data import TrainingData
from hume.train.lora import freeze_base


class System2Stage(nn.Module):
    name = "system2"
    # Optimisers whose learning rate follows the warmup-cosine schedule (the others stay constant).
    scheduled = ("system2",)

    def __init__(self, policy: HumePolicy, freeze_vision: bool, lora_only: bool = False):
        """lora_only: the VLM trains through its LoRA adapters only (hume/train/lora.py)."""
        super().__init__()
        policy.requires_grad_(False).eval()
        self.system2 = policy.system2.train().requires_grad_(True)
        if freeze_vision:
            self.system2.vision_tower.requires_grad_(False).eval()
        if lora_only:
            freeze_base(self.system2.vlm)

    def batch(self, data: TrainingData, idx: Tensor, generator: torch.Generator, augment: bool) -> dict:
        return data.system2_batch(idx, generator, augment)

    def forward(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The flow-matching loss; noise and flow time come with the batch (drawn per step)."""
        loss = self.system2(batch)
        return {"loss": loss}

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in self.system2.parameters() if p.requires_grad]
        o = cfg.optim
        return {"system2": torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)}

    def after_step(self) -> None:
        """Nothing to do after an optimiser step (no target networks in this stage)."""
