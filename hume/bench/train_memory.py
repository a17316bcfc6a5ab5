"""Training memory of a model too large for this machine, per GPU, computed from counts on the
meta device (shapes without storage): nothing is allocated, the full-size model builds in a second.

For each stage, the trainer's own stage module is built on the meta device, so the trainable
parameters are exactly those `hume train` trains (stage system2: System 2 without its frozen
SigLIP tower; stage system1_value: System 1 and the value head, System 2 frozen). Per GPU, at
N GPUs, sharded as hume/train/fsdp.py shards (the units of `block_units`):

- parameters: float32 master weights, 4 B x all parameters / N (frozen ones are sharded too);
- gathered: the bf16 copies gathered for compute: the root unit all step, plus two blocks at a
  time (the one computing and the next), 2 B each;
- gradients: float32, 4 B x trainable / N; optimizer: Adam's two moments, 8 B x trainable / N;
- activations: what the forward keeps for the backward, for `batch_size` samples per GPU (they
  do not shrink with N), counted by running the stage's loss on the meta device in bf16 with a
  hook on every tensor autograd saves (parameters excluded, each storage once). With activation
  checkpointing each joint layer keeps its inputs (counted from their shapes) and recomputes the
  rest in backward, one layer at a time: the peak adds the largest layer's own activations.
  Counted for stage system2 (System 2's joint pass, the one that trains the 3B network); stage
  system1_value runs System 2 without gradients, and its trained networks are small.
DDP instead keeps parameters, gradients and optimizer state whole on every GPU: the N = 1 row.

The check: for every N the stage is really sharded by `hume.train.fsdp.shard` on the meta device
under a fake N-process group (torch's testing backend: no peers, no memory), and the parameters
and trainable parameters process 0 holds are reported beside the table's count (`checked`).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
from torch import nn

from hume.config import parse_config
from hume.models.configuration_hume import HumeConfig
from hume.policy.hume_policy import build_networks
from hume.train.fsdp import block_units, shard
from hume.train.stage_system1_value import System1ValueStage
from hume.train.stage_system2 import System2Stage

GB = 1e9


@dataclasses.dataclass
class StageCounts:
    parameters: int  # every parameter of the stage (frozen ones included)
    trainable: int
    root: int  # parameters outside every block unit (gathered all step)
    two_largest_blocks: int
    blocks: int


class _Networks(nn.Module):
    """The three networks on the meta device, in a module shaped like HumePolicy for the stages."""

    def __init__(self, config: HumeConfig):
        super().__init__()
        with torch.device("meta"):
            for name, net in build_networks(config).items():
                setattr(self, name, net)
        self.config = config


def stage_module(config: HumeConfig, stage: str) -> System2Stage | System1ValueStage:
    holder = _Networks(config)
    if stage == "system2":
        return System2Stage(holder, freeze_vision=True)
    return System1ValueStage(holder)


def counts(stage: nn.Module) -> StageCounts:
    units = block_units(stage)
    in_blocks = sorted(sum(p.numel() for p in u.parameters()) for u in units)
    total = sum(p.numel() for p in stage.parameters())
    return StageCounts(
        parameters=total,
        trainable=sum(p.numel() for p in stage.parameters() if p.requires_grad),
        root=total - sum(in_blocks),
        two_largest_blocks=sum(in_blocks[-2:]),
        blocks=len(units),
    )


def sharded_counts(config: HumeConfig, stage: str, processes: int) -> dict[str, int]:
    """Parameters and trainable parameters that process 0 of `processes` holds once the trainer's
    sharding has run on the meta-device stage."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=processes)
    try:
        module = stage_module(config, stage)
        shard(module, torch.device("cpu"), "bf16")
        local = [
            (p.to_local() if hasattr(p, "to_local") else p, p.requires_grad) for p in module.parameters()
        ]
        return {
            "parameters": sum(t.numel() for t, _ in local),
            "trainable": sum(t.numel() for t, trained in local if trained),
        }
    finally:
        dist.destroy_process_group()


def _meta_system2_batch(config: HumeConfig, batch: int) -> dict[str, torch.Tensor]:
    s2, bf16 = config.system2, torch.bfloat16
    with torch.device("meta"):
        return {
            "images": torch.zeros(
                batch, len(config.cameras), 3, config.image_size, config.image_size, dtype=bf16
            ),
            "image_masks": torch.ones(batch, len(config.cameras), dtype=torch.bool),
            "tokens": torch.zeros(batch, s2.max_token_len, dtype=torch.long),
            "token_masks": torch.ones(batch, s2.max_token_len, dtype=torch.bool),
            "state": torch.zeros(batch, config.max_state_dim, dtype=bf16),
            "actions": torch.zeros(batch, config.chunk_size, config.max_action_dim, dtype=bf16),
            "noise": torch.zeros(batch, config.chunk_size, config.max_action_dim, dtype=bf16),
            "time": torch.zeros(batch, dtype=bf16),
        }


def activation_bytes_per_sample(config: HumeConfig) -> dict[str, float]:
    """Stage system2's saved activations per sample (bf16), without and with checkpointing."""
    stage = stage_module(config, "system2").to(torch.bfloat16)
    s2 = stage.system2
    params = {p.untyped_storage()._cdata for p in stage.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in params:
            saved[key] = max(saved.get(key, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        stage(_meta_system2_batch(config, 1))
    full = float(sum(saved.values()))
    layers = s2.config.vlm_depth
    # Checkpointed: the SigLIP tower is frozen (no activations either way), each joint layer keeps
    # its two inputs (prefix and suffix tokens, bf16), and one layer is recomputed at a time.
    prefix = len(config.cameras) * s2.tokens_per_image + config.system2.max_token_len
    suffix = 1 + config.chunk_size
    inputs = 2 * (prefix * s2.config.vlm_width + suffix * s2.config.expert_width)
    one_layer = full / layers  # the layers are alike: an even share of the total
    return {"without_checkpointing": full, "with_checkpointing": layers * inputs + one_layer}


def _rounded(row: dict) -> dict:
    return {
        k: _rounded(v) if isinstance(v, dict) else round(v, 2) if isinstance(v, float) else v
        for k, v in row.items()
    }


def paper_table(
    model: str, gpus: tuple[int, ...] = (1, 2, 4, 8), batch_size: int = 32, check: bool = True
) -> dict:
    """The per-GPU memory table of `model` (a configs/model/*.yaml), in GB; `check` shards the
    meta-device stage for each N (needs no process group of its own running)."""
    check = check and not dist.is_initialized()
    config = parse_config(HumeConfig, ["--config", model])
    activations = activation_bytes_per_sample(config)
    stages = {}
    for name in ("system2", "system1_value"):
        c = counts(stage_module(config, name))
        rows = []
        for n in gpus:
            parts = {
                "parameters_gb": 4 * c.parameters / n / GB,
                "gathered_gb": 2 * (c.root + c.two_largest_blocks) / GB,
                "gradients_gb": 4 * c.trainable / n / GB,
                "optimizer_gb": 8 * c.trainable / n / GB,
            }
            row: dict[str, float | dict[str, float]] = {"gpus": n, **parts}
            if check:
                held = sharded_counts(config, name, n)
                row["checked"] = {
                    "process0_parameters_gb": 4 * held["parameters"] / GB,
                    "process0_gradients_gb": 4 * held["trainable"] / GB,
                    "process0_optimizer_gb": 8 * held["trainable"] / GB,
                }
            states = sum(parts.values())
            if name == "system2":
                for kind, per_sample in activations.items():
                    row[f"activations_{kind}_gb"] = batch_size * per_sample / GB
                    row[f"total_{kind}_gb"] = states + batch_size * per_sample / GB
            else:
                row["total_before_activations_gb"] = states
            rows.append(_rounded(row))
        stages[name] = {"counts": dataclasses.asdict(c), "rows": rows}
    return {
        "model": model,
        "batch_size_per_gpu": batch_size,
        "activation_bytes_per_sample": {k: round(v) for k, v in activations.items()},
        "stages": stages,
    }
