"""From a LeRobot dataset to model batches for both training stages.

Every frame is held in memory, ready for the model: states and actions normalised with the
policy's `Normalizer`, camera frames resized once to the model's resolution (uint8), instructions
tokenised once per task. A batch is then a handful of gathers over frame indices:

    action chunk       frames i .. i+H-1 of i's episode; past the episode's end the last action is
                       repeated and `is_pad` marks it (the losses skip padded steps)
    System 1           the frame i+o that System 1 acts on, o steps into the System-2 chunk of
                       frame i; its K-state history ends at i+o and repeats the episode's first
                       state before the start (as HumePolicy does at the start of an episode)
    transition         (s_i, a_i.., r_i, done_i, s_i+1, G_i): one control step; done_i is the
                       dataset's `next.done`, so the last frame never bootstraps, and G_i is the
                       discounted return-to-go of hume/data/returns.py

Several datasets (demonstrations + rollouts, hume/data/concat.py) train as one: every frame feeds
the value head; System 1 imitates the frames of the first one only.

Images pass through the policy's own transform (hume/policy/transforms.py) and, when asked,
the training augmentation; every random draw comes from the step's torch.Generator.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from hume.config import ConfigError
from hume.constants import (
    ACTION_KEY,
    DONE_KEY,
    EPISODE_INDEX_KEY,
    IMAGE_KEY,
    REWARD_KEY,
    STATE_KEY,
    TASK_INDEX_KEY,
)
from hume.data.concat import ConcatDataset, open_datasets
from hume.data.labels import LabelledThinks
from hume.data.reader import LeRobotDataset
from hume.data.returns import episode_returns
from hume.data.stats import columns_stats
from hume.models.configuration_hume import HumeConfig
from hume.models.flow import sample_time
from hume.models.ranking import preference_pairs
from hume.policy.normalize import Normalizer
from hume.policy.transforms import image_to_tensor, pad_to, tokenize
from hume.train.augment import augment_camera

log = logging.getLogger(__name__)


def open_training_dataset(cfg) -> LeRobotDataset | ConcatDataset:
    """A `TrainConfig`'s dataset, with its extra_datasets appended as one dataset."""
    return open_datasets([cfg.dataset, *cfg.extra_datasets])


def dataset_stats(dataset: LeRobotDataset | ConcatDataset) -> dict:
    """The dataset's state/action statistics: stored ones if any, else computed from its frames."""
    stats = dataset.stats
    if stats is None or STATE_KEY not in stats or ACTION_KEY not in stats:
        log.info("%s has no stored statistics of %s/%s: computing them", dataset.root, STATE_KEY, ACTION_KEY)
        stats = columns_stats(dataset.columns, [STATE_KEY, ACTION_KEY])
    out = {key: {"mean": stats[key]["mean"], "std": stats[key]["std"]} for key in (STATE_KEY, ACTION_KEY)}
    if "min" in stats[ACTION_KEY] and "max" in stats[ACTION_KEY]:  # the value head's action box
        out[ACTION_KEY].update(min=stats[ACTION_KEY]["min"], max=stats[ACTION_KEY]["max"])
    return out


def ranking_rows(labels: LabelledThinks, heldout_every: int, thinks: int) -> np.ndarray:
    """The labelled thinks the ranking loss trains on (indices, in collection order): all but
    those of the held-out episodes (`LabelledThinks.held_out(heldout_every)`), and of those the
    first `thinks` (0: all), as if the collection had stopped there."""
    train = np.flatnonzero(~labels.held_out(heldout_every))
    if len(train) == 0:
        raise ConfigError(
            f"ranking_heldout_every={heldout_every} holds out all {len(labels)} labelled thinks: "
            "none is left to train on (use 0 for no split, or k >= 2)"
        )
    if thinks < 0 or thinks > len(train):
        raise ConfigError(
            f"ranking_thinks={thinks}, but there are {len(train)} training thinks "
            f"({len(labels) - len(train)} of {len(labels)} held out); use 1..{len(train)}, or 0 for all"
        )
    return train[:thinks] if thinks else train


def ranked_pairs(rates: np.ndarray) -> int:
    """Comparisons (candidate pairs of one think with different outcomes) in `rates` [T, N]."""
    return int(preference_pairs(torch.from_numpy(rates)).sum())


def _is_wrist(camera: str) -> bool:
    return "wrist" in camera


class TrainingData:
    """A LeRobot dataset in memory, shaped for `HumeConfig`'s networks.

    Shapes below: B batch, C cameras, S image size, H chunk, h System-1 horizon, K state history,
    L instruction tokens, A / Sd the padded action / state widths of the network that reads them.
    """

    def __init__(
        self, dataset: LeRobotDataset | ConcatDataset, config: HumeConfig, normalizer: Normalizer, tokenizer
    ):
        self.config = config
        self.root = dataset.root
        cols = dataset.columns
        for key, dim in ((STATE_KEY, config.state_dim), (ACTION_KEY, config.action_dim)):
            if key not in cols:
                raise ValueError(f"{dataset.root}: no {key!r} column (features: {sorted(cols)})")
            width = int(np.prod(cols[key].shape[1:]))
            if width != dim:
                raise ValueError(
                    f"{dataset.root}: {key!r} has {width} dims but the model config expects {dim} "
                    f"(set state_dim/action_dim in the model config to match the dataset)"
                )
        n = len(dataset)
        self.cameras = config.cameras
        missing = [c for c in self.cameras if IMAGE_KEY.format(c) not in dataset.camera_keys]
        if missing:
            raise ValueError(
                f"{dataset.root}: the model reads cameras {list(self.cameras)} but the dataset has no "
                f"{[IMAGE_KEY.format(c) for c in missing]} (it has {dataset.camera_keys}); pass "
                "LeRobotDataset(rename=...) or change the model's cameras"
            )
        self.state = torch.from_numpy(normalizer.state(cols[STATE_KEY].reshape(n, -1)))
        self.action = torch.from_numpy(normalizer.action(cols[ACTION_KEY].reshape(n, -1)))
        # The same actions as the value head scores them (its [-1, 1] box), mapped once.
        self.value_action = normalizer.value_actions(self.action)
        self.reward = torch.from_numpy(cols[REWARD_KEY].reshape(n).astype(np.float32))
        self.done = torch.from_numpy(cols[DONE_KEY].reshape(n).astype(np.float32))
        # The value head's own discount (one source of truth for gamma), not the reader's default.
        self.mc_return = torch.from_numpy(
            episode_returns(cols[REWARD_KEY], cols[EPISODE_INDEX_KEY], config.value_head.gamma)
        )
        self.task_index = torch.from_numpy(cols[TASK_INDEX_KEY].reshape(n).astype(np.int64))
        # System 1 imitates the first dataset only: extra ones (a policy's own rollouts, failures
        # included) teach the value head what fails, not which actions to take.
        self.imitate = torch.arange(n) < (dataset.offsets[1] if isinstance(dataset, ConcatDataset) else n)
        self.episode_start = torch.empty(n, dtype=torch.long)
        self.episode_end = torch.empty(n, dtype=torch.long)  # the episode's last frame, inclusive
        for k in range(dataset.num_episodes):
            frames = dataset.episode_range(k)
            self.episode_start[frames.start : frames.stop] = frames.start
            self.episode_end[frames.start : frames.stop] = frames.stop - 1
        s2 = config.system2
        self.tokens, self.token_masks = tokenize(
            tokenizer, dataset.tasks, s2.max_token_len, s2.lowercase_instruction, s2.instruction_suffix
        )
        self.image_size = config.image_size
        self.images = self._load_images(dataset)
        # Counterfactual labels beside the datasets (hume/data/labels.py), for the ranking loss.
        self.labels = LabelledThinks.of(dataset)
        if self.labels is not None:
            self.label_actions = normalizer.value_actions(torch.from_numpy(self.labels.candidates))
            self.label_rates = torch.from_numpy(self.labels.rates)
        log.info(
            "training data: %d frames, %d episodes, %d tasks, cameras %s at %d px",
            n,
            dataset.num_episodes,
            len(dataset.tasks),
            list(self.cameras),
            self.image_size,
        )

    def _load_images(self, dataset: LeRobotDataset | ConcatDataset) -> dict[str, Tensor]:
        """{camera: uint8 [N, S, S, 3]}: each episode decoded once, resized by the policy's transform."""
        images = {
            c: torch.empty(len(dataset), self.image_size, self.image_size, 3, dtype=torch.uint8)
            for c in self.cameras
        }
        for k in range(dataset.num_episodes):
            frames = dataset.episode_range(k)
            items = [dataset[i] for i in frames]
            for cam in self.cameras:
                raw = np.stack([item[IMAGE_KEY.format(cam)] for item in items])
                x = image_to_tensor(raw, self.image_size, self.config.resize_with_padding)
                images[cam][frames.start : frames.stop] = (
                    ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
                )
        return images

    def keep_labels(self, rows: np.ndarray) -> None:
        """Keep only the labelled thinks at `rows` (a train/held-out split, a learning curve)."""
        if self.labels is None:
            raise ValueError(f"{self.root}: no labelled thinks to choose from")
        self.labels = self.labels.subset(rows)
        self.label_actions = self.label_actions[torch.from_numpy(np.asarray(rows))]
        self.label_rates = torch.from_numpy(self.labels.rates)

    def __len__(self) -> int:
        return len(self.state)

    # ----- sampling ------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Frame indices [B], uniform over all frames."""
        return torch.randint(len(self), (batch_size,), generator=generator)

    def s1_offsets(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """o [B] uniform in 0..H-h, cut so that frame i+o stays inside i's episode."""
        cfg = self.config
        room = torch.clamp(self.episode_end[idx] - idx, max=cfg.chunk_size - cfg.s1_horizon)
        u = torch.rand(len(idx), generator=generator)
        return torch.minimum((u * (room + 1)).long(), room)

    # ----- pieces --------------------------------------------------------------------------------
    def chunk(self, idx: Tensor, length: int, actions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Actions [B, length, action_dim] from frame i on (of `actions`, by default the normalised
        ones), and is_pad [B, length]."""
        steps = idx[:, None] + torch.arange(length)
        end = self.episode_end[idx][:, None]
        table = self.action if actions is None else actions
        return table[torch.minimum(steps, end)], steps > end

    def state_history(self, idx: Tensor, k: int) -> Tensor:
        """Normalised states [B, K, state_dim] of frames i-K+1 .. i, clamped to the episode's start."""
        steps = idx[:, None] + torch.arange(-k + 1, 1)
        return self.state[torch.maximum(steps, self.episode_start[idx][:, None])]

    def camera_images(
        self, idx: Tensor, camera: str, size: int, generator: torch.Generator, augment: bool
    ) -> Tensor:
        """[B, 3, S, S] in [-1, 1]; augmented as Hume does (the wrist camera gets colour only)."""
        x = image_to_tensor(self.images[camera][idx], size)
        if not augment:
            return x
        x = augment_camera((x + 1.0) * 0.5, generator, geometric=not _is_wrist(camera))
        return x * 2.0 - 1.0

    def system2_inputs(self, idx: Tensor, generator: torch.Generator, augment: bool) -> dict[str, Tensor]:
        """System 2's observation at frames idx: images [B, C, 3, S, S], image_masks [B, C],
        tokens/token_masks [B, L], state [B, Sd]."""
        cfg = self.config
        images = torch.stack(
            [self.camera_images(idx, c, cfg.image_size, generator, augment) for c in cfg.cameras], 1
        )
        task = self.task_index[idx]
        return {
            "images": images,
            "image_masks": torch.ones(images.shape[:2], dtype=torch.bool),
            "tokens": self.tokens[task],
            "token_masks": self.token_masks[task],
            "state": pad_to(self.state[idx], cfg.max_state_dim),
        }

    # ----- stage batches -------------------------------------------------------------------------
    def system2_batch(self, idx: Tensor, generator: torch.Generator, augment: bool) -> dict[str, Tensor]:
        """What `System2.forward` takes: observation, padded chunk [B, H, A], action_is_pad, and the
        flow's noise and time drawn from `generator`."""
        cfg = self.config
        batch = self.system2_inputs(idx, generator, augment)
        actions, is_pad = self.chunk(idx, cfg.chunk_size)
        actions = pad_to(actions, cfg.max_action_dim)
        batch["actions"] = actions
        batch["action_is_pad"] = is_pad
        batch["noise"] = torch.randn(actions.shape, generator=generator)
        batch["time"] = sample_time(len(idx), generator=generator)
        return batch

    def system1_value_batch(
        self, idx: Tensor, generator: torch.Generator, augment: bool, system1: bool = True
    ) -> dict[str, Tensor]:
        """Everything stage system1_value needs, keyed by consumer:
        s2.*    System 2's observation at frame i and the noise [B, H, A] it samples from
        s1.*    System 1 at frame i+o: images {camera}, state_history [B, K, Sd1], offset [B],
                actions [B, h, A1] with is_pad [B, h], imitate [B] (frames of the first dataset);
                with System 1 frozen (system1 false) neither these nor the noise are built
        vh.*    the transition: actions [B, H, A_vh] (frame i's chunk), reward, done, mc_return
                [B], and next.* System 2's observation at frame i+1 (i itself at an episode's end,
                where done = 1 masks it)
        """
        cfg = self.config
        batch = {f"s2.{k}": v for k, v in self.system2_inputs(idx, generator, augment).items()}
        if system1:
            batch.update(self.system1_inputs(idx, generator, augment))

        vh_actions, _ = self.chunk(idx, cfg.chunk_size, self.value_action)
        batch["vh.actions"] = vh_actions
        batch["vh.reward"] = self.reward[idx]
        batch["vh.done"] = self.done[idx]
        batch["vh.mc_return"] = self.mc_return[idx]
        following = torch.minimum(idx + 1, self.episode_end[idx])
        nxt = self.system2_inputs(following, generator, augment)
        batch["vh.next.images"] = nxt["images"]
        batch["vh.next.image_masks"] = nxt["image_masks"]
        batch["vh.next.tokens"] = nxt["tokens"]
        batch["vh.next.token_masks"] = nxt["token_masks"]
        return batch

    def ranking_batch(self, size: int, generator: torch.Generator, augment: bool) -> dict[str, Tensor]:
        """rank.*: `size` labelled thinks drawn uniformly: System 2's observation at each think's
        frame (images, image_masks, tokens, token_masks), its candidates as the value head scores
        them [B, N, H, A_vh] and their success rates [B, N] (NaN: not tried)."""
        if self.labels is None:
            raise ValueError(
                f"{self.root}: no labelled thinks (meta/labelled_thinks.jsonl) for the ranking loss; "
                "record some with `hume collect --source=policy --policy.selector=oracle`"
            )
        pick = torch.randint(len(self.labels), (size,), generator=generator)
        frames = torch.from_numpy(self.labels.frame)[pick]
        batch = {
            f"rank.{k}": v for k, v in self.system2_inputs(frames, generator, augment).items() if k != "state"
        }
        batch["rank.candidates"] = self.label_actions[pick]
        batch["rank.rates"] = self.label_rates[pick]
        return batch

    def system1_inputs(self, idx: Tensor, generator: torch.Generator, augment: bool) -> dict[str, Tensor]:
        """The s1.* part of system1_value_batch, and the noise System 2 samples System 1's start from."""
        cfg = self.config
        batch = {"s2.noise": torch.randn((len(idx), cfg.chunk_size, cfg.max_action_dim), generator=generator)}
        offset = self.s1_offsets(idx, generator)
        now = idx + offset
        for cam in cfg.cameras:
            batch[f"s1.images.{cam}"] = self.camera_images(now, cam, cfg.image_size, generator, augment)
        batch["s1.state_history"] = pad_to(
            self.state_history(now, cfg.system1.state_history), cfg.s1_state_dim
        )
        batch["s1.offset"] = offset
        actions, is_pad = self.chunk(now, cfg.s1_horizon)
        batch["s1.actions"] = pad_to(actions, cfg.s1_action_dim)
        batch["s1.is_pad"] = is_pad
        batch["s1.imitate"] = self.imitate[idx]
        return batch
