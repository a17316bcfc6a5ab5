"""HumePolicy: System 2 + value-query head + System 1 with normalisation.

    think(obs)                          System 2 samples N candidate chunks (one batch, shared prefix
                                        cache); the value-query head keeps the best -> Chunk
    think_batch(observations)           think for B observations (a System-2 server's clients) in
                                        one forward -> B Chunks
    refine(obs, chunk, offset, history) System 1 cascades the chunk slice that starts `offset` steps
                                        in, on the current observation and state history -> h actions
    reset(seed) / select_action(obs)    the synchronous loop of `policy.loop`, a SyncLoop
                                        (hume/policy/sync_loop.py): the control schedule with thinks
                                        that land at once

think and refine keep no episode state: given the noise (or the Draws to take it from) their result
depends on their arguments only. The episode (schedule, random streams, record of thinks) lives in a
SyncLoop, as the runtime nodes and the evaluator's async mode keep theirs beside the policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from hume.config import ConfigError, to_dict
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
from hume.models import flow
from hume.models.configuration_hume import HumeConfig
from hume.models.paligemma_weights import load_paligemma
from hume.models.system1 import System1
from hume.models.system2 import System2
from hume.models.value_query_head import ValueQueryHead
from hume.policy import selectors
from hume.policy.chunk import Chunk
from hume.policy.draws import Draws
from hume.policy.fast_path import FastPath
from hume.policy.hub import push_folder, resolve_checkpoint
from hume.policy.loading import load_safetensors, parameters_as
from hume.policy.normalize import STATS_FILE, Normalizer
from hume.policy.sync_loop import SyncLoop
from hume.policy.transforms import observation_images, pad_to, tokenize
from hume.tokenizer import DEFAULT_TOKENIZER_DIR, load_tokenizer

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
# A checkpoint folder's files (as glob patterns); a Hub download fetches these only.
CHECKPOINT_FILES = [CONFIG_FILE, WEIGHTS_FILE, STATS_FILE, f"{TOKENIZER_DIR}/*"]


def candidate_schedule(config: HumeConfig, n: int, stop: float) -> dict[str, torch.Tensor]:
    """How each of n candidates integrates System 2's flow down to `stop`: start time t0, step dt,
    number of steps and velocity temperature, each float32/long [n] (see HumeConfig's
    candidate_schedule)."""
    if config.candidate_schedule == "hume":
        frac = torch.arange(n, dtype=torch.float64) / n
        (t_lo, t_hi), (v_lo, v_hi) = config.candidate_t0_range, config.candidate_temperature_range
        t0 = (t_lo + (t_hi - t_lo) * frac).float()
        temperature = (v_lo + (v_hi - v_lo) * frac).float()
    else:
        frac = (
            torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        )
        t0 = (1.0 - config.candidate_t0_spread * frac).float()
        temperature = (1.0 + (config.candidate_temperature_min - 1.0) * frac).float()
    return {"t0": t0, "temperature": temperature, **euler_plan(config, t0, stop)}


def plain_sample_schedule(config: HumeConfig, stop: float) -> dict[str, torch.Tensor]:
    """One candidate from pure noise (t0 = 1, temperature 1): what training-time sampling uses."""
    t0 = torch.ones(1)
    return {"t0": t0, "temperature": torch.ones(1), **euler_plan(config, t0, stop)}


def euler_plan(config: HumeConfig, t0: torch.Tensor, stop: float) -> dict[str, torch.Tensor]:
    """Step size and count from t0 down to `stop`. "spread": pi0's step count for the interval
    from 1 (1 / num_steps each), each candidate's steps shrunk to end exactly at `stop`; "hume": steps
    of exactly 1 / num_steps while t stays above stop (the authors' sampler)."""
    if config.candidate_schedule == "hume":
        dt = -1.0 / config.system2.num_steps
        return {"dt": torch.full_like(t0, dt), "steps": flow.fixed_step_counts(t0, dt, stop)}
    steps = max(1, round(config.system2.num_steps * (1.0 - stop)))
    return {"dt": (stop - t0) / steps, "steps": torch.full(t0.shape, steps, dtype=torch.long)}


NETWORKS = ("system2", "value_head", "system1")


def network_dtype(config: HumeConfig, name: str) -> torch.dtype:
    """The dtype a network's weights are built in: config.dtype, except the value-query head's
    (float32 always: see HumeConfig.dtype)."""
    return torch.float32 if name == "value_head" else getattr(torch, config.dtype)


def _system2(config: HumeConfig) -> System2:
    return System2(
        config.system2,
        image_size=config.image_size,
        chunk_size=config.chunk_size,
        action_dim=config.max_action_dim,
        state_dim=config.max_state_dim,
        robot_action_dim=config.action_dim,
    )


def _value_head(config: HumeConfig) -> ValueQueryHead:
    return ValueQueryHead(config.value_head, config.system2.vlm_width, config.action_dim)


def _system1(config: HumeConfig) -> System1:
    return System1(
        config.system1,
        cameras=config.cameras,
        chunk_size=config.chunk_size,
        horizon=config.s1_horizon,
        state_dim=config.s1_state_dim,
        action_dim=config.s1_action_dim,
    )


_BUILDERS: dict[str, Callable[[HumeConfig], nn.Module]] = {
    "system2": _system2,
    "value_head": _value_head,
    "system1": _system1,
}
Network = TypeVar("Network", bound=nn.Module)


def build_network(
    config: HumeConfig, name: str, builder: Callable[[HumeConfig], Network], empty: bool = False
) -> Network:
    """Network `name` of the policy, with its shapes from `config`, its weights in network_dtype.
    empty: the weights on the meta device, uninitialised (for load_weights to fill; the buffers
    are real)."""
    with parameters_as("meta" if empty else None, network_dtype(config, name)):
        return builder(config)


def build_networks(
    config: HumeConfig, only: tuple[str, ...] = NETWORKS, empty: bool = False
) -> dict[str, nn.Module]:
    """The policy's three networks (or those named in `only`), built in NETWORKS' order (random
    weights draw from one stream) as build_network builds each."""
    return {name: build_network(config, name, _BUILDERS[name], empty) for name in NETWORKS if name in only}


class HumePolicy(nn.Module):
    def __init__(
        self,
        config: HumeConfig,
        stats: dict | None = None,
        tokenizer_dir: str | Path | None = None,
        empty: bool = False,
    ):
        """A randomly initialised policy (empty: weights not yet there, for load_weights); use
        `from_config` / `from_pretrained` rather than this."""
        super().__init__()
        config.validate()
        self.config = config
        # In NETWORKS' order, as build_networks builds them.
        self.system2 = build_network(config, "system2", _system2, empty)
        self.value_head = build_network(config, "value_head", _value_head, empty)
        self.system1 = build_network(config, "system1", _system1, empty)
        self.normalizer = Normalizer(stats, config.state_dim, config.action_dim)
        self.tokenizer_dir = Path(tokenizer_dir or config.system2.tokenizer_path or DEFAULT_TOKENIZER_DIR)
        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        # The base vocabulary must fit the embedding; added tokens (PaliGemma's <image>) never occur
        # in an instruction.
        if self.tokenizer.vocab_size > config.system2.vocab_size:
            raise ValueError(
                f"the tokenizer in {self.tokenizer_dir} has {self.tokenizer.vocab_size} tokens but "
                f"system2.vocab_size is {config.system2.vocab_size}; raise vocab_size"
            )
        # The streams a think draws from when its caller brings none (a server's, as openpi's
        # policy keeps its sampling key); an episode's come from its loop.
        self.draws = Draws.seeded(0)
        self.loop = SyncLoop(self)
        self._fast = FastPath(self.system2, self.value_head, self.system1)

    # ----- construction and checkpoints --------------------------------------------------------
    @classmethod
    def from_config(cls, config: HumeConfig, stats: dict | None = None) -> HumePolicy:
        """Random weights, except the pretrained parts the config names: the System-2 backbone
        (system2.paligemma_path) and System 1's vision encoder (system1.dinov2_path)."""
        policy = cls(config, stats)
        if config.system2.paligemma_path:
            load_paligemma(policy.system2, config.system2.paligemma_path)
        if config.system1.dinov2_path:
            policy.system1.load_vision_encoder(config.system1.dinov2_path)
        return policy.eval()

    def save_pretrained(self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """config.json + model.safetensors + stats.json (+ the tokenizer, so the folder stands alone).
        `state_dict` replaces the module's own (e.g. with LoRA adapters merged in)."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(to_dict(self.config), indent=2) + "\n")
        state = {
            k: v.detach().contiguous().cpu()
            for k, v in (state_dict if state_dict is not None else self.state_dict()).items()
        }
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        self.normalizer.save(directory)
        self.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))

    def push_to_hub(self, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
        """Upload this policy's checkpoint folder as the Hugging Face Hub model `repo_id`; returns
        the commit's URL."""
        return push_folder(self.save_pretrained, repo_id, private=private, token=token)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, revision: str | None = None, device: str | None = None, **overrides
    ) -> HumePolicy:
        """Load a folder written by save_pretrained (or by `hume train`), or a Hugging Face Hub model
        id holding one (`revision`: its branch, tag or commit).

        Keyword overrides replace top-level HumeConfig fields, e.g. the ablation switches
        (use_value_head=False), num_candidates or dtype="bfloat16"; weights must still fit the
        config. The networks are built empty and the stored tensors become their weights (cast to
        config.dtype on the way), so loading costs the weights' memory once and no initialisation.
        `device`: where the policy runs (default: the CPU); with config.compile the fast path is
        traced there, once.
        """
        directory = resolve_checkpoint(path, CHECKPOINT_FILES, revision)
        config = load_config(directory / CONFIG_FILE)
        if overrides:
            config = HumeConfig.from_dict({**to_dict(config), **overrides})
        normalizer = Normalizer.load(directory, config.state_dim, config.action_dim)
        # The tokenizer saved with the weights is the one they were trained with; prefer it over
        # system2.tokenizer_path, which may name a folder of another machine.
        tokenizer_dir = directory / TOKENIZER_DIR
        tokenizer = tokenizer_dir if tokenizer_dir.is_dir() else None
        policy = cls(config, normalizer.to_dict(), tokenizer, empty=True)
        policy.load_weights(directory / WEIGHTS_FILE)
        if device is not None:
            policy.to(device)
        policy.eval()
        if config.compile:
            policy.warm_up()
        return policy

    def load_weights(self, file: Path) -> None:
        """Strict load (hume/policy/loading.py); a missing, unexpected or mis-shaped tensor is an
        error naming file and key. Empty weights (from_pretrained's) become the stored tensors;
        real ones are overwritten in place. Either way each tensor is cast to its network's dtype."""
        load_safetensors(self, file)

    # ----- the fast path ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Thinks and refines on a blank observation, so that the fast path's graphs are traced and
        optimised before the first real call (with streams of its own: the policy's are untouched)."""
        cfg = self.config
        blank = np.zeros((cfg.image_size, cfg.image_size, 3), np.uint8)
        obs: dict[str, Any] = {IMAGE_KEY.format(c): blank for c in cfg.cameras}
        obs |= {STATE_KEY: np.zeros(cfg.state_dim, np.float32), TASK_KEY: "warm up"}
        # The oracle selector's plain thinks draw one candidate; the others draw num_candidates.
        n = 1 if cfg.selector == "oracle" else cfg.num_candidates
        noise = np.zeros((n, cfg.chunk_size, cfg.max_action_dim), np.float32)
        # This class's own think and refine: a subclass's overrides (counting, recording) are not
        # for a warm-up. Twice: TorchScript profiles a graph's first run and optimises it on the
        # second (measured: 309 ms for the tiny think's second run, 45 ms from the third on).
        for _ in range(2):
            (chunk,) = HumePolicy.think_batch(self, [obs], [noise], draws=Draws.seeded(0))
            HumePolicy.refine(self, obs, chunk, 0)

    @property
    def traced_graphs(self) -> int:
        """How many fast-path graphs are traced now (0: every call so far ran eagerly)."""
        return len(self._fast)

    def _uses_fast_path(self, *networks: nn.Module) -> bool:
        """Whether this call takes the fast path: config.compile, and inference (no gradients, the
        networks in eval mode: a graph is traced in eval mode)."""
        return self.config.compile and not torch.is_grad_enabled() and not any(m.training for m in networks)

    def _apply(self, fn, recurse=True):
        # .to(), .half() and friends replace the weight tensors the graphs were traced with: a
        # warmed-up policy is traced again on its new device or dtype.
        warmed = hasattr(self, "_fast") and len(self._fast) > 0
        if warmed:
            self._fast.clear()
        out = super()._apply(fn, recurse)
        if warmed and not self.training:
            self.warm_up()
        return out

    @property
    def device(self) -> torch.device:
        return self.system2.action_out_proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.system2.action_out_proj.weight.dtype

    # ----- the two halves -------------------------------------------------------------------------
    @torch.no_grad()
    def think(
        self,
        obs: dict,
        noise: np.ndarray | torch.Tensor | None = None,
        committed: np.ndarray | None = None,
        delay: int = 0,
        recent: np.ndarray | None = None,
        draws: Draws | None = None,
        choice: int | None = None,
    ) -> Chunk:
        """System 2 + value-query head: N candidates in one batch, the best one as a Chunk.

        noise: the candidates' starting noise [N, H, max_action_dim] (N = num_candidates); drawn from
        `draws` (default: the policy's own streams) when None. Given noise makes a run reproducible across
        implementations; the Chunk carries every candidate, their values and the chosen index.
        committed: robot actions [k, action_dim] the robot executes from this observation's tick on
        whatever System 2 says (the control schedule's `committed()`), and `delay` the steps before
        the new chunk can be followed: with config.rtc every candidate is guided to continue them
        (real-time chunking). recent: the robot's last executed actions [k, action_dim], which the
        coherence selector compares candidates with when nothing is committed. draws: the random
        streams of the noise (when not given) and of the random selectors' choices. choice: with
        selector "oracle", follow candidate `choice` of num_candidates (None: one plain sample)."""
        noises = None if noise is None else [noise]
        return self.think_batch([obs], noises, [committed], [delay], [recent], draws, choice)[0]

    @torch.no_grad()
    def think_batch(
        self,
        observations: list[dict],
        noise: list[np.ndarray | torch.Tensor] | None = None,
        committed: list[np.ndarray | None] | None = None,
        delays: list[int] | None = None,
        recent: list[np.ndarray | None] | None = None,
        draws: Draws | None = None,
        choice: int | None = None,
    ) -> list[Chunk]:
        """`think` for B observations (one per client of a System-2 server) in one forward.

        One prefix encoding for all B; each observation's N candidates share its own prefix cache;
        the value head picks per observation. Entry b equals `think(observations[b], noise[b],
        committed[b], delays[b])` up to float rounding. noise: per observation [N, H,
        max_action_dim], or None to draw each from `draws` in order (as B thinks would);
        committed / delays / recent: per observation, None for one without committed actions;
        choice: the oracle's (think's), for one observation only."""
        cfg = self.config
        s2 = self.system2
        b = len(observations)
        committed = [None] * b if committed is None else committed
        delays = [0] * b if delays is None else delays
        recent = [None] * b if recent is None else recent
        lengths = {len(committed), len(delays), len(recent), b if noise is None else len(noise)}
        if not (b >= 1 and lengths == {b}):
            raise ValueError(
                f"think_batch needs one noise/committed/delay/recent entry per observation ({b})"
            )
        draws = self.draws if draws is None else draws
        n = self._candidates_to_draw(b, choice)
        images = [
            observation_images(obs, cfg.cameras, cfg.image_size, cfg.resize_with_padding)
            for obs in observations
        ]
        image_batch = torch.cat([torch.stack([im[c] for c in cfg.cameras], 1) for im in images])
        image_batch = image_batch.to(self.device, self.dtype)
        image_masks = torch.ones(image_batch.shape[:2], dtype=torch.bool, device=self.device)
        tokens, token_masks = tokenize(
            self.tokenizer,
            [self._task(obs) for obs in observations],
            cfg.system2.max_token_len,
            cfg.system2.lowercase_instruction,
            cfg.system2.instruction_suffix,
        )
        states = np.stack([self._state(obs) for obs in observations])
        state = pad_to(torch.from_numpy(states), cfg.max_state_dim).to(self.device, self.dtype)

        fast = self._uses_fast_path(s2, self.value_head)
        prefix = (image_batch, image_masks, tokens.to(self.device), token_masks.to(self.device))
        if fast:
            prefix_embs, prefix_mask, cache = self._fast.encode_prefix(*prefix)
        else:
            prefix_embs, prefix_mask = s2.embed_prefix(*prefix)
            cache = s2.encode_prefix(prefix_embs, prefix_mask)
        stop = cfg.theta2 if cfg.use_system1 else 0.0
        plan = {k: v[None].expand(b, n).to(self.device) for k, v in candidate_schedule(cfg, n, stop).items()}
        if noise is None:
            noise_t = torch.cat([self._candidate_noise(n, draws.noise) for _ in range(b)])
        else:
            noise_t = torch.cat([self._check_noise(x, n) for x in noise])
        # The candidates' flow (noise, times, steps) stays float32 around a half-precision System 2.
        sample_args = (
            cache,
            state,
            noise_t.to(self.device),
            plan["t0"],
            plan["dt"],
            plan["steps"],
            plan["temperature"],
        )
        guide = self._guide(committed, delays)
        if fast and guide is None:
            sampled = self._fast.sample(*sample_args).float()
        else:
            sampled = s2.sample(*sample_args, guide).float()

        q: np.ndarray | list[None]
        if cfg.use_value_head:
            scored = self.normalizer.value_actions(sampled[..., : cfg.action_dim])
            if fast:
                critics = self._fast.value(prefix_embs, prefix_mask, scored)
            else:
                critics = self.value_head(prefix_embs, prefix_mask, scored, target=True)
            scores = critics.float().cpu().numpy().transpose(1, 0, 2)  # [B, E, N]
            q, values = scores, scores.min(axis=1)  # values: the pessimistic one, which the record keeps
        else:
            q, values = [None] * b, np.full((b, n), np.nan, np.float32)
        candidates = sampled.cpu().numpy()
        indices = [
            choice
            if choice is not None
            else selectors.choose(
                cfg,
                q[i],
                candidates[i, ..., : cfg.action_dim],
                self._reference(committed[i], recent[i]),
                draws.choices,
            )
            for i in range(b)
        ]
        return [
            Chunk(
                actions=candidates[i, k, :, : cfg.action_dim],
                noise_level=float(stop),
                values=values[i],
                index=k,
                candidates=candidates[i, ..., : cfg.action_dim],
                padding=None if cfg.system2.pin_padded_actions else candidates[i, k, :, cfg.action_dim :],
            )
            for i, k in enumerate(indices)
        ]

    @torch.no_grad()
    def refine(
        self,
        obs: dict,
        chunk: Chunk,
        offset: int,
        history: np.ndarray | None = None,
        continues: np.ndarray | None = None,
    ) -> np.ndarray:
        """System 1's cascade on the h steps of `chunk` from `offset`: robot actions [h, action_dim].

        history: the robot states [K, state_dim] of the last K ticks, oldest first (the schedule
        keeps them); None: this observation's state alone, repeated. continues: robot actions
        aligned with the slice (NaN rows: free) that, with config.rtc, the refined actions are
        guided to continue over the first rtc_system1_overlap of them (the schedule's
        `RefineRequest.continues`). With System 1 off the slice itself is returned, unnormalised.
        Past the chunk's end the last action is repeated.
        """
        cfg = self.config
        h = cfg.s1_horizon
        if not 0 <= offset < len(chunk.actions):
            raise ValueError(f"offset {offset} is outside the chunk of {len(chunk.actions)} actions")
        start = chunk.model_actions[offset : offset + h]
        if len(start) < h:
            start = np.concatenate([start, np.repeat(start[-1:], h - len(start), 0)])
        if not cfg.use_system1:
            return self._robot_actions(start[:, : cfg.action_dim])
        s1 = self.system1
        images = {
            cam: img.to(self.device)
            for cam, img in observation_images(
                obs, cfg.cameras, cfg.image_size, cfg.resize_with_padding
            ).items()
        }
        states = self._history(obs, history)
        history_t = pad_to(torch.from_numpy(states)[None], cfg.s1_state_dim).to(self.device)
        start_t = pad_to(torch.from_numpy(start[:, : cfg.s1_action_dim])[None], cfg.s1_action_dim)
        start_t = start_t.to(self.device)
        offset_t = torch.tensor([offset], dtype=torch.float32, device=self.device)
        guide = self._refine_guide(continues, h, cfg.s1_action_dim)
        theta1, steps = s1.config.theta1, s1.config.num_steps
        if guide is None and self._uses_fast_path(s1):
            refined = self._fast.refine(images, history_t, offset_t, start_t, theta1, steps)
        else:
            refined = s1.refine(images, history_t, offset_t, start_t, theta1, steps, guide)
        return self._robot_actions(refined[0, :, : cfg.action_dim].float().cpu().numpy())

    def _refine_guide(self, continues: np.ndarray | None, h: int, width: int) -> flow.Guide | None:
        """System 1's target and weights [1, h, width]: the first rtc_system1_overlap actions to
        continue, from the slice's first free row, decaying; None when there is nothing to continue."""
        cfg = self.config
        if not cfg.rtc or not cfg.rtc_system1_overlap or continues is None:
            return None
        continues = np.asarray(continues, np.float32)[:h]
        free = np.isnan(continues).any(axis=1)
        first = int(np.argmin(free)) if not free.all() else len(continues)
        k = min(len(continues) - first, cfg.rtc_system1_overlap)
        if k <= 0:
            return None
        target = torch.zeros(1, h, width)
        weights = torch.zeros_like(target)
        target[0, first : first + k, : cfg.action_dim] = torch.from_numpy(
            self.model_actions(continues[first : first + k])
        )
        arm = cfg.action_dim - 1  # the gripper (last dim) is left free
        weights[0, first:, :arm] = flow.prefix_weights(h - first, 0, k)[:, None]
        return flow.Guide(target.to(self.device), weights.to(self.device), cfg.rtc_system1_max_guidance)

    def _guide(self, committed: list[np.ndarray | None], delays: list[int]) -> flow.Guide | None:
        """Real-time chunking's target and weights [B, H, max_action_dim] for a think, or None when
        nothing is committed or held; an observation without committed actions gets weight 0 (unguided)."""
        cfg = self.config
        if not cfg.rtc or all(c is None or len(c) == 0 for c in committed):
            return None
        target = torch.zeros(len(committed), cfg.chunk_size, cfg.max_action_dim)
        weights = torch.zeros_like(target)
        for i, (actions, delay) in enumerate(zip(committed, delays, strict=True)):
            if actions is None or len(actions) == 0:
                continue
            actions = np.asarray(actions, np.float32)
            if actions.ndim != 2 or actions.shape[1] != cfg.action_dim:
                raise ValueError(
                    f"committed actions must be [k, action_dim={cfg.action_dim}], got {list(actions.shape)}"
                )
            k = min(len(actions), cfg.chunk_size)
            target[i, :k, : cfg.action_dim] = torch.from_numpy(self.model_actions(actions[:k]))
            overlap = k if cfg.rtc_soft_steps < 0 else min(k, delay + cfg.rtc_soft_steps)
            weights[i, :, : cfg.action_dim] = flow.prefix_weights(cfg.chunk_size, delay, overlap)[:, None]
        if not weights.any():
            # Nothing to hold (no delay and no soft steps, as on an episode's first think): a
            # guided step would pay a backward pass to pull with weight 0.
            return None
        return flow.Guide(target.to(self.device), weights.to(self.device), cfg.rtc_max_guidance)

    def robot_actions(self, chunk: Chunk) -> np.ndarray:
        """A chunk's actions [H, action_dim] as the robot would execute them unrefined."""
        return self._robot_actions(chunk.actions)

    def model_actions(self, actions: np.ndarray) -> np.ndarray:
        """Robot actions [..., action_dim] -> the model's normalised space (_robot_actions inverted)."""
        actions = np.array(actions, np.float32)
        if self.config.postprocess_gripper:
            actions[..., -1] = (1.0 - actions[..., -1]) / 2.0
        return self.normalizer.action(actions)

    def _robot_actions(self, x: np.ndarray) -> np.ndarray:
        """Model-space actions [..., action_dim] -> what the robot executes (unnormalised, and the
        gripper mapped when config.postprocess_gripper)."""
        actions = self.normalizer.unnormalize_action(x)
        if self.config.postprocess_gripper:
            actions[..., -1] = 1.0 - 2.0 * actions[..., -1]
        return actions

    # ----- the synchronous loop (the Python contract's reset / select_action) -----------------------
    def reset(self, seed: int | None = None) -> None:
        """Start an episode of `self.loop` (SyncLoop.reset)."""
        self.loop.reset(seed)

    def select_action(self, obs: dict) -> np.ndarray:
        """One robot action [action_dim] of `self.loop`'s episode (SyncLoop.select_action)."""
        return self.loop.select_action(obs)

    # ----- helpers ----------------------------------------------------------------------------------
    def _candidates_to_draw(self, batch: int, choice: int | None) -> int:
        """How many candidates a think draws: the oracle thinks one plain sample unless told a choice."""
        cfg = self.config
        if choice is not None:
            if cfg.selector != "oracle":
                raise ValueError(f"a forced choice needs selector 'oracle', not {cfg.selector!r}")
            if not 0 <= choice < cfg.num_candidates:
                raise ValueError(f"candidate {choice} of {cfg.num_candidates}")
            if batch != 1:
                raise ValueError("the oracle's forced choice is for one observation's think")
        if cfg.selector == "oracle" and choice is None:
            return 1
        return cfg.num_candidates

    def _reference(self, committed: np.ndarray | None, recent: np.ndarray | None) -> np.ndarray | None:
        """What the coherence selector compares candidates with, in the model's action space: the
        committed actions, else the last executed ones."""
        if self.config.selector != "coherence":
            return None
        for actions in (committed, recent):
            if actions is not None and len(actions):
                return self.model_actions(np.asarray(actions, np.float32))
        return None

    def _candidate_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[1, n, H, A] noise; candidate i is drawn from its own seed (base + i), so candidate 0 is the
        same whatever N is: ablations over N and over the value head compare paired samples."""
        base = int(torch.randint(0, 2**30, (1,), generator=generator))
        shape = (self.config.chunk_size, self.config.max_action_dim)
        seeded = [torch.randn(shape, generator=torch.Generator().manual_seed(base + i)) for i in range(n)]
        return torch.stack(seeded)[None]

    def _check_noise(self, noise: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
        noise = torch.as_tensor(
            np.asarray(noise, np.float32) if not isinstance(noise, torch.Tensor) else noise
        )
        expected = (n, self.config.chunk_size, self.config.max_action_dim)
        if tuple(noise.shape) != expected:
            raise ValueError(
                f"candidate noise must be [num_candidates, chunk_size, max_action_dim] = {list(expected)}, "
                f"got {list(noise.shape)}"
            )
        return noise.float()[None]

    def raw_state(self, obs: dict) -> np.ndarray:
        """The observation's robot state [state_dim], checked, unnormalised."""
        if STATE_KEY not in obs:
            raise KeyError(f"observation lacks {STATE_KEY!r} (got keys {sorted(obs)})")
        state = np.asarray(obs[STATE_KEY], np.float32).reshape(-1)
        if state.shape != (self.config.state_dim,):
            raise ValueError(f"{STATE_KEY} must have {self.config.state_dim} values, got {state.shape[0]}")
        return state

    def _state(self, obs: dict) -> np.ndarray:
        return self.normalizer.state(self.raw_state(obs))

    def _history(self, obs: dict, history: np.ndarray | None) -> np.ndarray:
        """System 1's normalised state history [K, state_dim]."""
        k = self.config.system1.state_history
        if history is None:
            return np.repeat(self._state(obs)[None], k, 0)
        history = np.asarray(history, np.float32)
        if history.shape != (k, self.config.state_dim):
            raise ValueError(
                f"the state history must be [K={k}, state_dim={self.config.state_dim}], "
                f"got {list(history.shape)}"
            )
        return self.normalizer.state(history)

    @staticmethod
    def _task(obs: dict) -> str:
        task = obs.get(TASK_KEY)
        if not isinstance(task, str):
            raise KeyError(f"observation needs the instruction string under {TASK_KEY!r}")
        return task

    def num_parameters(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in module.parameters()) for name, module in self.named_children()}


def load_config(file: Path) -> HumeConfig:
    """config.json -> HumeConfig; a missing file, bad JSON or a wrong key is an error naming the file."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: the checkpoint has no config")
    try:
        raw = json.loads(file.read_text())
        config = HumeConfig.from_dict(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    except Exception as e:  # draccus raises several types for unknown keys and wrong types
        raise ValueError(f"{file}: not a HumeConfig ({e})") from None
    config.validate()
    return config
