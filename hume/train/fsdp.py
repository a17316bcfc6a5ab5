"""Sharded training (FSDP2, `torch.distributed.fsdp.fully_shard`): every process holds 1/world of
each parameter, its gradient and its optimizer state, and gathers a block's weights only while
that block computes.

Units: each transformer block is one unit (SigLIP's and DINOv2's encoder layers; each Gemma layer
of the VLM, the action expert, System 1's trunk and the value head's backbone), so is a token
embedding; the rest of the stage (patch embeddings, projections, norms, critics, actor) is the
root unit, gathered for the whole step. Our Gemma layers never run their
own `forward`: joint attention (hume/models/joint_attention.py) calls each layer's `project` (norm,
Q/K/V) and, after attention over all stacks, its `finish` (output projection, MLP); both are
registered as forward methods, so a layer is gathered for each half (twice per pass: the price
of joint attention's split). Frozen networks (System 2 during stage system1_value) are sharded
too but have no gradients and no optimizer state.

fully_shard cannot shard a 0-d parameter (the value head's log-temperature): those stay whole on
every process and `average_replicated_grads` averages their gradients, as the reduce-scatter does
for the sharded ones.

Mixed precision (bf16): parameters are gathered and computed in bf16, the sharded master weights,
the optimizer and the gradient reduction stay float32.

Checkpoints: `save_sharded` writes the stage's weights and every optimizer's state with
torch.distributed.checkpoint (each process its own shards; loading reshards, so a run may resume
on another number of processes), `full_state_dict` gathers whole tensors on process 0 for the
consolidated `model.safetensors`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

SHARDED_DIR = "sharded"  # the torch.distributed.checkpoint folder inside step_XXXXXX/


def init_process_group(device: torch.device) -> None:
    """A one-process group when none is running (`hume train` without torchrun), so that the
    sharded path runs on a single device as on many."""
    if dist.is_initialized():
        return
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def block_units(stage: nn.Module) -> list[nn.Module]:
    """The modules that become units of their own: every transformer block, and the token
    embedding (Gemma's 257k x 2048 table would otherwise stay gathered in the root all step)."""
    from transformers.models.dinov2.modeling_dinov2 import Dinov2Layer
    from transformers.models.gemma.modeling_gemma import GemmaTextScaledWordEmbedding
    from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

    from hume.models.joint_attention import JointDecoderLayer

    kinds = (JointDecoderLayer, SiglipEncoderLayer, Dinov2Layer, GemmaTextScaledWordEmbedding)
    return [m for m in stage.modules() if isinstance(m, kinds)]


def shard(stage: nn.Module, device: torch.device, precision: str) -> list[nn.Parameter]:
    """Shard `stage` in place, one unit per transformer block and the rest as the root unit.
    Returns the parameters left whole on every process (see `average_replicated_grads`)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    from hume.models.joint_attention import JointDecoderLayer

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    units = block_units(stage)
    for module in units:
        fully_shard(module, mesh=mesh, mp_policy=policy)
        if isinstance(module, JointDecoderLayer):
            # Joint attention calls a layer's two halves, not its forward: each half gathers the
            # layer's weights, and its outputs start the re-gather in backward.
            register_fsdp_forward_method(module, "project")
            register_fsdp_forward_method(module, "finish")
    replicated = [p for p in stage.parameters() if p.ndim == 0]
    fully_shard(stage, mesh=mesh, mp_policy=policy, ignored_params=set(replicated))
    log.info(
        "sharded over %d process(es): %d block units + the root; %d scalar parameter(s) kept whole; "
        "compute in %s",
        dist.get_world_size(),
        len(units),
        len(replicated),
        "bf16 (float32 master weights and reductions)" if precision == "bf16" else "float32",
    )
    return replicated


def average_replicated_grads(params: list[nn.Parameter]) -> None:
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None and world > 1:
            dist.all_reduce(p.grad)
            p.grad /= world


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """torch's clip_grad_norm_ over sharded and whole gradients together: the squared norms of the
    local shards are summed over processes, those of whole gradients counted once."""
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else torch.device("cpu")
    sharded = torch.zeros((), device=device)
    whole = torch.zeros((), device=device)
    for g in grads:
        if hasattr(g, "to_local"):
            sharded += g.to_local().float().pow(2).sum()
        else:
            whole += g.float().pow(2).sum()
    if dist.get_world_size() > 1:
        dist.all_reduce(sharded)
    total = (sharded + whole).sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        _local(g).mul_(coef.to(g.dtype))
    return total


def local_bytes(params: list[nn.Parameter], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, int]:
    """Bytes this process holds for the parameters, their gradients and the optimizers' state
    (local shards only: what sharding divides)."""

    def size(t: torch.Tensor) -> int:
        t = _local(t)
        return t.numel() * t.element_size()

    states = [s for opt in optimizers.values() for s in opt.state.values()]
    state = sum(size(v) for s in states for v in s.values() if torch.is_tensor(v))
    return {
        "parameters": sum(size(p) for p in params),
        "gradients": sum(size(p.grad) for p in params if p.grad is not None),
        "optimizer": state,
    }


def save_sharded(path: Path, stage: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Every process writes its shards of the weights and optimizer states into path/sharded/."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state: dict[str, Any] = {"model": get_model_state_dict(stage)}
    for name, opt in optimizers.items():
        state[f"optimizer.{name}"] = get_optimizer_state_dict(stage, opt)
    dcp.save(state, checkpoint_id=str(path / SHARDED_DIR))


def load_sharded(path: Path, stage: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Restore the weights and optimizer states of a `save_sharded` checkpoint, resharded to this
    run's processes; nothing in it is unpickled beyond what a checkpoint holds (safe_dcp.py)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    from hume.train.safe_dcp import SafeFileSystemReader, SafeLoadPlanner

    folder = path / SHARDED_DIR
    if not folder.is_dir():
        raise ValueError(
            f"{path} has no {SHARDED_DIR}/ (not saved by a sharded run): resume it without --distributed=fsdp"
        )
    model = {"model": get_model_state_dict(stage)}
    dcp.load(model, storage_reader=SafeFileSystemReader(str(folder)), planner=SafeLoadPlanner())
    set_model_state_dict(stage, model["model"])
    # The template holds state for every trainable parameter; parameters that never had a gradient
    # (the VLM's last MLP) have none saved, and keep the template's, which no step reads.
    optim = {f"optimizer.{name}": get_optimizer_state_dict(stage, opt) for name, opt in optimizers.items()}
    dcp.load(
        optim,
        storage_reader=SafeFileSystemReader(str(folder)),
        planner=SafeLoadPlanner(allow_partial_load=True),
    )
    for name, opt in optimizers.items():
        set_optimizer_state_dict(stage, opt, optim[f"optimizer.{name}"])
    log.info("sharded state restored from %s over %d process(es)", folder, dist.get_world_size())


def full_state_dict(stage: nn.Module) -> dict[str, torch.Tensor]:
    """The stage's whole tensors on process 0 (empty elsewhere), float32, on the CPU."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # A full (unsharded) model state holds only tensors; the declared ValueType covers every state.
    full = get_model_state_dict(stage, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return cast(dict[str, torch.Tensor], full)


def mean_over_processes(scalars: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each scalar averaged over the processes (the logged loss is the whole step's)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world == 1 or not scalars:
        return scalars
    names = sorted(scalars)
    values = torch.tensor([scalars[k] for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {k: float(v) / world for k, v in zip(names, values, strict=True)}
