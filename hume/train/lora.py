"""LoRA on System 2's VLM for stage `system2` (with peft): fine-tune a converted 3B checkpoint on
one GPU by training low-rank adapters of the Gemma 2B decoder instead of all its weights; the action
expert and the projections still train in full, the vision tower stays frozen.

Checkpoints stay our plain format: `save` writes the adapters merged into the VLM weights
(model.safetensors loads with `HumePolicy.from_pretrained` as usual) and the adapters alone beside
them (lora_adapter.safetensors), so that a resumed run restores the untouched base weights from
`init_from` and continues the very adapters it had.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from hume.train.config import LoraConfig

if TYPE_CHECKING:
    from peft.tuners.lora import LoraLayer

    from hume.policy import HumePolicy

log = logging.getLogger(__name__)

ADAPTER_FILE = "lora_adapter.safetensors"
ADAPTER = "default"  # peft's name of the one adapter we train
VLM = "system2.vlm."


def add_adapters(policy: HumePolicy, cfg: LoraConfig) -> None:
    """Wrap the target linear layers of System 2's VLM with LoRA adapters (B = 0: no change yet)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    config = PeftLoraConfig(
        r=cfg.rank,
        # peft declares an int, but only divides by it (scaling = alpha / r): a float alpha is kept.
        lora_alpha=cfg.alpha,  # type: ignore[arg-type]
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.targets),
    )
    vlm = policy.get_submodule(VLM.rstrip("."))
    inject_adapter_in_model(config, vlm, adapter_name=ADAPTER)
    n = sum(p.numel() for name, p in vlm.named_parameters() if "lora_" in name)
    log.info("LoRA rank %d on System 2's VLM (%s): %.2fM adapter parameters", cfg.rank, cfg.targets, n / 1e6)


def freeze_base(vlm: nn.Module) -> None:
    """Only the adapters of the VLM train."""
    for name, p in vlm.named_parameters():
        p.requires_grad_("lora_" in name)


def _lora_layers(policy: nn.Module) -> dict[str, LoraLayer]:
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in policy.named_modules() if isinstance(m, LoraLayer)}


def merged_state_dict(
    policy: nn.Module, state: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The policy's weights (or `state`, the same keys gathered whole from a sharded run) with every
    adapter folded into its base layer, W + scaling * B @ A, under the plain names."""
    layers = _lora_layers(policy)
    state = policy.state_dict() if state is None else state
    merged = {}
    for key, tensor in state.items():
        if "lora_" in key:
            continue
        module_name, _, leaf = key.rpartition(".base_layer.")
        if module_name in layers:
            if leaf == "weight":
                a = state[f"{module_name}.lora_A.{ADAPTER}.weight"]
                b = state[f"{module_name}.lora_B.{ADAPTER}.weight"]
                delta = (b @ a) * layers[module_name].scaling[ADAPTER]
                tensor = tensor + delta.to(tensor.dtype)
            key = f"{module_name}.{leaf}"
        merged[key] = tensor.detach()
    return merged


def adapter_state_dict(
    policy: nn.Module, state: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    state = policy.state_dict() if state is None else state
    return {k: v.detach().contiguous() for k, v in state.items() if "lora_" in k}


def save(policy: HumePolicy, path: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """model.safetensors with merged weights (through save_pretrained) + the adapters alone."""
    policy.save_pretrained(path, state_dict=merged_state_dict(policy, state))
    save_file(adapter_state_dict(policy, state), str(path / ADAPTER_FILE), metadata={"format": "pt"})


def restore(policy: nn.Module, checkpoint: Path, base: Path) -> None:
    """For a resumed LoRA run: the VLM's base weights from `base` (init_from, which the adapters
    never changed) and the adapters from `checkpoint`."""
    with torch.no_grad(), safe_open(str(Path(base) / "model.safetensors"), "pt") as f:
        for key, tensor in policy.state_dict().items():
            if key.startswith(VLM) and "lora_" not in key:
                tensor.copy_(f.get_tensor(key.replace(".base_layer.", ".")))
    adapters = load_file(str(Path(checkpoint) / ADAPTER_FILE))
    missing = set(adapter_state_dict(policy)) ^ set(adapters)
    if missing:
        raise ValueError(
            f"{checkpoint / ADAPTER_FILE}: adapters do not match this LoRA config ({sorted(missing)[0]})"
        )
    policy.load_state_dict(adapters, strict=False)
