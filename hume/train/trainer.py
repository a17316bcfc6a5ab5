"""The training loop of both stages, on Hugging Face `accelerate`.

One code path for a CPU, one GPU, many GPUs (DDP) and many nodes: `accelerate launch -m
hume.cli.main train ...` starts one process per device and `Accelerator` wraps the stage module and
its optimisers; each process draws its own batch (batch_size is per process).

`distributed: fsdp` shards the stage instead (FSDP2, hume/train/fsdp.py), on one process or many,
outside accelerate's wrapping: accelerate still starts the processes and picks the device.

Exact resume: every random draw of step s (batch indices, augmentation, flow noise and time,
Cal-QL's sampled actions) comes from generators seeded with (seed, s, micro-batch), the
micro-batches of a step numbered over all processes (process x grad_accum + k), and the learning
rate is a function of s (so 2 processes with grad_accum 1 and 1 process with grad_accum 2 see
the same frames and the same gradient). A checkpoint therefore needs only the weights, the
optimiser state and s: training resumed from step s repeats, step for step, the losses of a run
that never stopped.
With `ema_decay` > 0 it also holds the raw weights and the moving average's counters (ema.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from hume.config import ConfigError, parse_config, to_dict
from hume.constants import ACTION_KEY
from hume.data.concat import ConcatDataset
from hume.data.reader import LeRobotDataset
from hume.models.configuration_hume import HumeConfig
from hume.models.gemma_stack import GemmaStack
from hume.models.system2 import System2
from hume.policy import HumePolicy
from hume.train import fsdp, lora
from hume.train.checkpoint import (
    STATE_FILE,
    checkpoint_step,
    latest_checkpoint,
    load_training_state,
    save_training_state,
    step_dir,
)
from hume.train.config import TrainConfig
from hume.train.data import TrainingData, dataset_stats, open_training_dataset, ranked_pairs, ranking_rows
from hume.train.ema import WeightAverage, restore_raw_weights
from hume.train.metrics import MetricsLog, plot_losses
from hume.train.schedule import warmup_cosine
from hume.train.stage_system1_value import System1ValueStage
from hume.train.stage_system2 import System2Stage
from hume.train.validation import validation_losses

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    step: int  # steps done in all (including those of runs this one resumed)
    checkpoint: Path | None  # the newest checkpoint
    losses: dict[str, float]  # the last step's scalars
    seconds: float  # wall time of this run
    plot: Path | None
    # Wall and CPU seconds of each step of this run (batch to optimizer step; no logging or saving).
    step_seconds: list[float] = field(default_factory=list)
    step_cpu_seconds: list[float] = field(default_factory=list)
    # The newest checkpoint's val/* (and val_raw/*) scalars; empty without val_dataset.
    validation: dict[str, float] = field(default_factory=dict)
    # Bytes this process held after the run's first optimizer step: parameters, gradients and
    # optimizer state (local shards under distributed=fsdp).
    memory: dict[str, int] = field(default_factory=dict)


def step_seed(seed: int, step: int, process: int = 0) -> int:
    """A 63-bit seed for step `step` of process `process`, well mixed so that nearby seeds and
    steps give unrelated streams."""
    return (
        int(np.random.SeedSequence([seed, step, process]).generate_state(2, np.uint32).view(np.uint64)[0])
        >> 1
    )


# The dtype of the weights a training run updates (HumeConfig.dtype).
TRAIN_DTYPE = "float32"


def load_model_config(path: str) -> HumeConfig:
    try:
        return parse_config(HumeConfig, ["--config", path])
    except ValueError as e:
        raise ConfigError(f"model config {path}: {e}") from None


def build_policy(
    cfg: TrainConfig, dataset: LeRobotDataset | ConcatDataset, resume_from: Path | None
) -> HumePolicy:
    """The policy to train: from the checkpoint being resumed, else from init_from, else fresh
    from the model config with the dataset's normalisation statistics. Its weights are float32
    whatever the config's dtype (that is for inference; training's bf16 is autocast or FSDP's)."""
    if resume_from is not None:
        policy = HumePolicy.from_pretrained(resume_from, dtype=TRAIN_DTYPE)
        if cfg.lora.rank:
            lora.add_adapters(policy, cfg.lora)
            lora.restore(policy, resume_from, Path(cfg.init_from))
        return policy
    stats = dataset_stats(dataset)
    if cfg.init_from:
        log.info("starting from %s (its normalisation statistics are kept)", cfg.init_from)
        policy = HumePolicy.from_pretrained(cfg.init_from, dtype=TRAIN_DTYPE)
    else:
        model = dataclasses.replace(load_model_config(cfg.model), dtype=TRAIN_DTYPE)
        policy = HumePolicy.from_config(model, stats)
    if cfg.lora.rank:
        lora.add_adapters(policy, cfg.lora)
    if cfg.stage == "system1_value":
        # A checkpoint that ran as System 2 alone (a converted pi0) becomes a full Hume here: this
        # stage trains System 1 and the value head, and the saved policy uses them.
        if not policy.config.use_system1 and not cfg.train_system1:
            raise ConfigError(
                f"{cfg.init_from} has no trained System 1 (use_system1 false): train it here "
                "(train_system1=true) before fine-tuning the value head alone"
            )
        if not (policy.config.use_system1 and policy.config.use_value_head):
            log.info("switching System 1 and the value head on: this stage trains them")
            policy.config = dataclasses.replace(policy.config, use_system1=True, use_value_head=True)
        if cfg.cql_alpha is not None:
            head = dataclasses.replace(policy.config.value_head, cql_alpha=cfg.cql_alpha)
            policy.config = dataclasses.replace(policy.config, value_head=head)
            policy.value_head.config = head
        # the value head is trained from here on
        action = stats[ACTION_KEY]
        if not cfg.value_action_box:
            policy.normalizer.clear_value_box()
        elif policy.normalizer.action_low is None and "min" in action:
            policy.normalizer.set_value_box(action["min"], action["max"])
    return policy


def make_stage(cfg: TrainConfig, policy: HumePolicy) -> System2Stage | System1ValueStage:
    if cfg.stage == "system2":
        return System2Stage(policy, cfg.freeze_vision, lora_only=cfg.lora.rank > 0)
    return System1ValueStage(
        policy,
        train_system1=cfg.train_system1,
        bootstrap=cfg.critic_target == "td",
        ranking=cfg.ranking,
        regression=cfg.critic_target != "ranking",
        ranking_batch=cfg.ranking_batch,
    )


def _choose_ranking_thinks(cfg: TrainConfig, data: TrainingData) -> None:
    """Keep the labelled thinks the ranking loss trains on (the held-out split, the first n)."""
    everything = data.labels
    assert everything is not None  # train() refuses the ranking loss without labelled thinks
    rows = ranking_rows(everything, cfg.ranking_heldout_every, cfg.ranking_thinks)
    data.keep_labels(rows)
    held_out = everything.held_out(cfg.ranking_heldout_every)
    log.info(
        "ranking loss: %d of %d labelled thinks (%d candidate pairs with different outcomes); "
        "%d held out (ranking_heldout_every=%d), %d unused (ranking_thinks=%d)",
        len(rows),
        len(everything),
        ranked_pairs(data.label_rates.numpy()),
        int(held_out.sum()),
        cfg.ranking_heldout_every,
        len(everything) - int(held_out.sum()) - len(rows),
        cfg.ranking_thinks,
    )


def set_activation_checkpointing(stage: nn.Module, on: bool) -> None:
    """The activation_checkpointing switch on every transformer stack of the stage: our Gemma
    stacks and System 2's joint pass, and transformers' vision towers (off is their default)."""
    for module in stage.modules():
        if isinstance(module, (GemmaStack, System2)):
            module.activation_checkpointing = on
        elif on and isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
            module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def mixed_precision(cfg: TrainConfig) -> str:
    """bf16 only where the device can; otherwise full precision, with a warning."""
    if cfg.mixed_precision == "bf16" and not cfg.cpu and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            log.warning("this GPU has no bf16: training in float32")
            return "no"
    return cfg.mixed_precision


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) the stage `cfg` describes. accelerate fixes the device and precision once
    per process: calls within one process must agree on `mixed_precision` and `cpu`."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm.auto import tqdm

    started = time.monotonic()
    sharded = cfg.distributed == "fsdp"
    # Some trainable weights never reach a loss: the VLM's last-layer MLP and final norm (only its
    # keys/values feed the action expert) and DINOv2's mask token. DDP must be told.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Sharded, bf16 is FSDP's mixed-precision policy (bf16 compute, float32 master weights), not autocast.
    precision = mixed_precision(cfg)
    accelerator = Accelerator(
        cpu=cfg.cpu, mixed_precision="no" if sharded else precision, kwargs_handlers=[ddp]
    )
    output = Path(cfg.output)
    resume_from = latest_checkpoint(output) if cfg.resume else None
    if resume_from is not None:
        _check_same_stage(resume_from, cfg.stage)

    dataset = open_training_dataset(cfg)
    policy = build_policy(cfg, dataset, resume_from)
    data = TrainingData(dataset, policy.config, policy.normalizer, policy.tokenizer)
    if cfg.ranking and data.labels is None:
        raise ConfigError(
            f"the ranking loss needs labelled thinks, and {data.root} has none "
            "(meta/labelled_thinks.jsonl: `hume collect --source=policy --policy.selector=oracle`)"
        )
    if cfg.ranking:
        _choose_ranking_thinks(cfg, data)
    stage = make_stage(cfg, policy)
    set_activation_checkpointing(stage, cfg.activation_checkpointing)
    replicated = []
    if sharded:
        fsdp.init_process_group(accelerator.device)
        replicated = fsdp.shard(stage, accelerator.device, precision)
    optimizers = stage.optimizers(cfg)
    if resume_from is None:
        start = 0
    elif sharded:
        start = checkpoint_step(resume_from)
        fsdp.load_sharded(resume_from, stage, optimizers)
    else:
        start = load_training_state(resume_from, optimizers)
    trainable = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in optimizers.items()}
    average = _weight_average(cfg, policy, trainable, resume_from)
    if resume_from is not None:
        restore_raw_weights(policy, resume_from)
    val_data = None
    if cfg.val_dataset:
        val_data = TrainingData(
            LeRobotDataset(cfg.val_dataset), policy.config, policy.normalizer, policy.tokenizer
        )
    log.info(
        "stage %s: %s trainable parameters, %d frames, device %s, precision %s, %d process(es) (%s)",
        cfg.stage,
        {name: sum(p.numel() for p in params) for name, params in trainable.items()},
        len(data),
        accelerator.device,
        precision,
        accelerator.num_processes,
        "FSDP" if sharded else accelerator.distributed_type.value,
    )

    if sharded:
        module = stage
    else:
        module, *prepared = accelerator.prepare(stage, *optimizers.values())
        optimizers = dict(zip(optimizers, prepared, strict=True))
    if average is not None:
        average.to(accelerator.device)
    metrics = MetricsLog(output, start) if accelerator.is_main_process else None
    checkpoint = resume_from
    scalars: dict[str, float] = {}
    validation: dict[str, float] = {}
    memory: dict[str, int] = {}
    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc=f"train {cfg.stage}",
        disable=not accelerator.is_local_main_process,
    )
    step_seconds, step_cpu_seconds = [], []
    for step in bar:
        t0, c0 = time.perf_counter(), time.process_time()
        lrs = _set_learning_rates(cfg, stage, optimizers, step)
        outs = []
        for micro in range(cfg.grad_accum):
            seed = step_seed(cfg.seed, step, accelerator.process_index * cfg.grad_accum + micro)
            torch.manual_seed(seed)
            data_gen = torch.Generator().manual_seed(seed)
            model_gen = torch.Generator(device=accelerator.device).manual_seed(seed)
            idx = data.sample(cfg.batch_size, data_gen)
            batch = _to_device(stage.batch(data, idx, data_gen, cfg.augment), accelerator.device)
            # DDP reduces gradients on the last micro-batch only; FSDP reduce-scatters each one
            # into the sharded gradients (no whole-size gradient is kept between micro-batches).
            last = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if sharded or last else accelerator.no_sync(module):
                with accelerator.autocast():
                    out = module(batch, model_gen)
                accelerator.backward(out["loss"] / cfg.grad_accum)
            outs.append({k: v.detach() for k, v in out.items()})
        if sharded:
            fsdp.average_replicated_grads(replicated)
        for name, opt in optimizers.items():
            if cfg.optim.grad_clip > 0:
                if sharded:
                    fsdp.clip_grad_norm(trainable[name], cfg.optim.grad_clip)
                else:
                    accelerator.clip_grad_norm_(trainable[name], cfg.optim.grad_clip)
            opt.step()
        if not memory:
            memory = fsdp.local_bytes(list(stage.parameters()), optimizers)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        stage.after_step()
        if average is not None:
            average.step()
        step_seconds.append(time.perf_counter() - t0)
        step_cpu_seconds.append(time.process_time() - c0)

        done = step + 1
        save = done % cfg.save_every == 0 or done == cfg.steps
        row = {}
        if done % cfg.log_every == 0 or done == cfg.steps:
            # The step's scalars: the mean over its micro-batches and over the processes.
            scalars = {k: float(np.mean([float(o[k].float().mean()) for o in outs])) for k in outs[0]}
            scalars = fsdp.mean_over_processes(scalars, accelerator.device)
            scalars.update({f"lr/{name}": lr for name, lr in lrs.items()})
            row.update(scalars)
            bar.set_postfix(loss=f"{scalars['loss']:.4f}")
        # Sharded, every process takes part in the forward passes; only the main one logs.
        if save and val_data is not None and (sharded or accelerator.is_main_process):
            validation = _validate(stage, val_data, cfg, accelerator, average)
            row.update(validation)
        if row and metrics is not None:
            metrics.write(done, row)
        if save:
            if sharded:
                checkpoint = _save_sharded(accelerator, policy, stage, optimizers, output, done, cfg)
            else:
                checkpoint = _save(accelerator, policy, optimizers, output, done, cfg, average)
    bar.close()
    plot = None
    if metrics is not None:
        metrics.close()
        plot = plot_losses(output)
    seconds = time.monotonic() - started
    log.info("stage %s: %d steps in %.0f s; newest checkpoint %s", cfg.stage, cfg.steps, seconds, checkpoint)
    return TrainResult(
        step=max(start, cfg.steps),
        checkpoint=checkpoint,
        losses=scalars,
        seconds=seconds,
        plot=plot,
        step_seconds=step_seconds,
        step_cpu_seconds=step_cpu_seconds,
        validation=validation,
        memory=memory,
    )


def _weight_average(
    cfg: TrainConfig, policy: HumePolicy, trainable: dict[str, list], resume_from: Path | None
) -> WeightAverage | None:
    """The moving average of every parameter an optimiser trains, or None when ema_decay is 0.
    Built from the policy as loaded, which for a resumed run is the checkpoint's average."""
    if cfg.ema_decay == 0:
        return None
    trained = {id(p) for params in trainable.values() for p in params}
    params = {name: p for name, p in policy.named_parameters() if id(p) in trained}
    average = WeightAverage(params, cfg.ema_decay)
    if resume_from is not None:
        average.load_state(resume_from)
    log.info("moving average of %d trained tensors, decay %g", len(params), cfg.ema_decay)
    return average


def _validate(
    stage, data: TrainingData, cfg: TrainConfig, accelerator, average: WeightAverage | None
) -> dict[str, float]:
    """val/*: the stage's losses on val_dataset with the weights a checkpoint saves (the average
    when on); val_raw/*: with the raw weights, when the average is on."""

    def score(prefix: str) -> dict[str, float]:
        losses = validation_losses(
            stage, data, cfg.val_frames, cfg.batch_size, cfg.seed, accelerator.device, accelerator.autocast
        )
        return {f"{prefix}/{k}": v for k, v in losses.items()}

    if average is None:
        return score("val")
    raw = score("val_raw")
    with average.applied():
        return {**score("val"), **raw}


def _set_learning_rates(cfg: TrainConfig, stage, optimizers: dict, step: int) -> dict[str, float]:
    """Scheduled optimisers follow warmup-cosine over cfg.steps; the others keep their rate."""
    lrs = {}
    for name, opt in optimizers.items():
        if name in stage.scheduled:
            o = cfg.optim
            lr = warmup_cosine(
                step, peak_lr=o.lr, warmup_steps=o.warmup_steps, total_steps=cfg.steps, end_lr=o.end_lr
            )
            for group in opt.param_groups:
                group["lr"] = lr
        lrs[name] = opt.param_groups[0]["lr"]
    return lrs


def _save(
    accelerator,
    policy: HumePolicy,
    optimizers: dict,
    output: Path,
    step: int,
    cfg: TrainConfig,
    average: WeightAverage | None,
) -> Path:
    """The policy (with the moving average when on, the raw weights beside it), then the
    optimiser state and trainer_state.json, which marks the checkpoint complete."""
    path = step_dir(output, step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with average.applied() if average is not None else contextlib.nullcontext():
            if cfg.lora.rank:
                lora.save(policy, path)
            else:
                policy.save_pretrained(path)
        if average is not None:
            average.save(path)
        save_training_state(path, optimizers, step, cfg.stage, to_dict(cfg))
    accelerator.wait_for_everyone()
    return path


def _save_sharded(
    accelerator,
    policy: HumePolicy,
    stage: nn.Module,
    optimizers: dict,
    output: Path,
    step: int,
    cfg: TrainConfig,
) -> Path:
    """A sharded run's checkpoint: the consolidated policy (whole float32 tensors gathered on the
    main process, the files `HumePolicy.from_pretrained` reads), every process's shards of the
    weights and optimizer states in sharded/, then trainer_state.json."""
    path = step_dir(output, step)
    accelerator.wait_for_everyone()
    full = fsdp.full_state_dict(stage)
    if accelerator.is_main_process:
        # The networks outside the stage (e.g. System 1 during stage system2) are whole already.
        state = {k: v for k, v in policy.state_dict().items() if k not in full}
        state.update(full)
        if cfg.lora.rank:
            lora.save(policy, path, state)
        else:
            policy.save_pretrained(path, state_dict=state)
    fsdp.save_sharded(path, stage, optimizers)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_training_state(path, None, step, cfg.stage, to_dict(cfg))
    accelerator.wait_for_everyone()
    return path


def _check_same_stage(path: Path, stage: str) -> None:
    saved = json.loads((path / STATE_FILE).read_text()).get("stage")
    if saved != stage:
        raise ConfigError(
            f"{path.parent} holds checkpoints of stage {saved!r}, not {stage!r}: pick another --output, "
            f"or name this checkpoint in init_from to start stage {stage!r} from it"
        )
