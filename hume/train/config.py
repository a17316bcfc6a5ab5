"""`hume train` configuration (import-light: no torch here)."""

from __future__ import annotations

import dataclasses

from hume.config import ConfigError

STAGES = ("system2", "system1_value")
DISTRIBUTED = ("ddp", "fsdp")
CRITIC_TARGETS = ("td", "monte_carlo", "ranking")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    # AdamW peak learning rate, reached after warmup_steps (linear), then cosine down to end_lr.
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-10
    warmup_steps: int = 1000
    end_lr: float = 2.5e-6
    # Gradient-norm clipping per optimiser; 0 turns it off.
    grad_clip: float = 1.0


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    # Rank of the LoRA adapters on System 2's VLM in stage system2; 0 trains the VLM in full.
    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    # The VLM's linear layers that get adapters.
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # "system2": flow matching of the VLA; "system1_value": S2 frozen, S1 cascade + Cal-QL critic,
    # actor and temperature.
    stage: str = "system2"
    # A LeRobot-format dataset folder (v2.0, v2.1 or v3.0).
    dataset: str = ""
    # More dataset folders trained on together with `dataset`, e.g. rollouts of a policy recorded
    # by `hume collect --source=policy` (failures included) next to the demonstrations. Frames are
    # drawn uniformly over all of them; each episode keeps its own Monte-Carlo returns.
    extra_datasets: list[str] = dataclasses.field(default_factory=list)
    # Model config for a fresh model; ignored when init_from names a checkpoint.
    model: str = "configs/model/tiny.yaml"
    # A policy checkpoint to start from (required by system1_value: it supplies the frozen S2).
    init_from: str = ""
    # Folder of the step_XXXXXX/ checkpoints, metrics.jsonl, tensorboard/ and loss_curves.png.
    output: str = "outputs/train"
    # Total optimiser steps (the learning-rate schedule spans them).
    steps: int = 2000
    # Frames per micro-batch (per process under `accelerate launch` / torchrun).
    batch_size: int = 32
    # Micro-batches per optimizer step (gradient accumulation): a step sees
    # batch_size x grad_accum x processes frames.
    grad_accum: int = 1
    # Several processes: "ddp" replicates the stage on each (accelerate's data parallel; also a
    # plain single-process run); "fsdp" shards parameters, gradients and optimizer state per
    # transformer block (FSDP2, hume/train/fsdp.py), on one process as on many.
    distributed: str = "ddp"
    # Recompute each transformer layer in the backward pass instead of keeping its activations.
    activation_checkpointing: bool = False
    # Step s draws all its randomness from (seed, s, process): runs and resumes are reproducible.
    seed: int = 0
    # Write a checkpoint every save_every steps (and at the last step).
    save_every: int = 500
    # Log scalars (metrics.jsonl, TensorBoard, tqdm) every log_every steps.
    log_every: int = 10
    # Continue from the newest complete step_XXXXXX/ in `output` when there is one.
    resume: bool = True
    # "no" or "bf16" (bf16 where the device supports it; with distributed=fsdp the weights are
    # gathered and computed in bf16, master weights, optimizer and gradient reductions stay float32).
    mixed_precision: str = "no"
    # Keep System 2's SigLIP tower fixed in stage system2 (Hume freezes pretrained SigLIP).
    freeze_vision: bool = True
    # Random crop, small rotation and colour jitter (wrist cameras: colour only).
    augment: bool = True
    # Optimiser of the flow-matching networks (S2 in stage system2, the S1 trunk in system1_value).
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    # Critic, actor and temperature (Adam, constant rate as in Hume's stage 2). Their other
    # hyper-parameters (gamma, tau, cql_alpha) belong to the model: value_head.* in its config.
    critic_lr: float = 1e-5
    # Stage system1_value: the value head scores actions rescaled to [-1, 1] by the data's action
    # min/max (the range of its actor and of Cal-QL's uniform actions). false: as normalised by
    # mean/std, unbounded (how checkpoints/libero_spatial_task0 was trained).
    value_action_box: bool = True
    # Stage system1_value: what the critics regress on. "td": Cal-QL's bootstrapped target
    # r + gamma Q_target(s', actor's action); "monte_carlo": the frame's Monte-Carlo return-to-go,
    # the value of the policies that recorded the data (demonstrations and rollouts); "ranking":
    # no regression at all, the critics learn only to order candidates at the same state (the
    # Bradley-Terry loss on the datasets' labelled thinks, below; actor and temperature untrained).
    critic_target: str = "td"
    # Stage system1_value: the weight of the Bradley-Terry loss over labelled thinks (pairs of
    # candidates of one state whose outcomes differ; hume/models/ranking.py), added to the critic
    # loss; the datasets must carry labels (`hume collect` with policy.selector=oracle,
    # meta/labelled_thinks.jsonl). 0: off, unless critic_target is "ranking" (then 1).
    ranking_weight: float = 0.0
    # Labelled thinks per step for that loss (drawn uniformly over those it trains on).
    ranking_batch: int = 16
    # Hold out every k-th labelled episode of each task (its 1st, (k+1)-th, ...) from the ranking
    # loss, so one collection serves training and testing: score those with
    # `scripts/critic_ranking.py --checkpoint CKPT --heldout_every=k`. 0: train on every think.
    ranking_heldout_every: int = 0
    # Train the ranking loss on the first n of the (not held-out) labelled thinks, in collection
    # order, as if collection had stopped there (a learning curve). 0: all of them.
    ranking_thinks: int = 0
    # Stage system1_value: the CQL regulariser's weight for this run, replacing the model's
    # value_head.cql_alpha (the checkpoint saves it); null keeps the model's. CQL lifts the data's
    # Q by about cql_alpha / 2 over its regression target, a return of at most 1 here.
    cql_alpha: float | None = None
    # Stage system1_value: false keeps init_from's System 1 as it is and trains the value head
    # alone (a critic fine-tune: nothing the robot executes changes unless the head chooses).
    train_system1: bool = True
    # Run on the CPU even when an accelerator is present.
    cpu: bool = False
    # LoRA on System 2's VLM (stage system2, starting from init_from): see hume/train/lora.py.
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    # Exponential moving average of the trained weights (hume/train/ema.py; openpi's pi0 uses
    # 0.99), updated after every optimiser step; a checkpoint's model.safetensors is the average,
    # raw_weights.safetensors the weights the optimiser trains. 0 = off. docs/training.md has
    # the measurement behind the default.
    ema_decay: float = 0.0
    # A held-out dataset (the model's cameras and widths), scored at every checkpoint: val/* in
    # metrics.jsonl with the checkpoint's weights (the average when ema_decay > 0; val_raw/* then
    # with the raw weights). Empty = no validation.
    val_dataset: str = ""
    # Frames of val_dataset scored, evenly spaced, with the same draws at every checkpoint.
    val_frames: int = 256

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not self.dataset:
            raise ConfigError("dataset is empty: name a LeRobot dataset folder (--dataset=PATH)")
        if any(not path for path in self.extra_datasets) or self.dataset in self.extra_datasets:
            raise ConfigError(f"extra_datasets must name other dataset folders, got {self.extra_datasets}")
        if self.stage == "system1_value" and not self.init_from:
            raise ConfigError("stage system1_value needs init_from: a checkpoint with a trained System 2")
        if self.cql_alpha is not None and self.cql_alpha < 0:
            raise ConfigError(f"cql_alpha must be >= 0 (null: the model's), got {self.cql_alpha}")
        if self.critic_target not in CRITIC_TARGETS:
            raise ConfigError(f"critic_target must be one of {CRITIC_TARGETS}, got {self.critic_target!r}")
        if self.ranking_weight < 0 or self.ranking_batch < 1:
            raise ConfigError(
                f"ranking_weight must be >= 0 and ranking_batch >= 1, got {self.ranking_weight} and "
                f"{self.ranking_batch}"
            )
        if self.ranking_heldout_every < 0 or self.ranking_heldout_every == 1:
            raise ConfigError(
                "ranking_heldout_every must be 0 (no split) or >= 2 (1 would hold out every episode), "
                f"got {self.ranking_heldout_every}"
            )
        if self.ranking_thinks < 0:
            raise ConfigError(f"ranking_thinks must be >= 0 (0: all), got {self.ranking_thinks}")
        if (self.ranking_heldout_every or self.ranking_thinks) and not self.ranking:
            raise ConfigError(
                "ranking_heldout_every / ranking_thinks choose the ranking loss's thinks: they need "
                "critic_target=ranking or ranking_weight > 0"
            )
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.distributed not in DISTRIBUTED:
            raise ConfigError(f"distributed must be one of {DISTRIBUTED}, got {self.distributed!r}")
        if self.distributed == "fsdp" and self.ema_decay:
            raise ConfigError(
                "ema_decay > 0 is not supported with distributed=fsdp (the average is not sharded)"
            )
        for name in ("steps", "batch_size", "grad_accum", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optim.lr <= 0 or self.critic_lr <= 0:
            raise ConfigError(
                f"learning rates must be > 0, got optim.lr={self.optim.lr}, critic_lr={self.critic_lr}"
            )
        if self.lora.rank < 0:
            raise ConfigError(f"lora.rank must be >= 0, got {self.lora.rank}")
        if self.lora.rank and (self.stage != "system2" or not self.init_from):
            raise ConfigError(
                "lora.rank > 0 fine-tunes System 2's VLM from a checkpoint: it needs stage system2 "
                "and init_from"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if self.val_frames < 1:
            raise ConfigError(f"val_frames must be >= 1, got {self.val_frames}")
        if self.optim.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.optim.warmup_steps}")

    @property
    def ranking(self) -> float:
        """The Bradley-Terry loss's weight this run trains with (0: none)."""
        return self.ranking_weight or (1.0 if self.critic_target == "ranking" else 0.0)
