"""Stage `system1_value`: System 2 frozen; System 1's cascade loss and the value-query head's
Cal-QL critic, actor and temperature losses, trained together (Hume's second stage).

System 1 learns to finish System 2's own work: its start is the slice, o steps in, of the chunk
the frozen System 2 samples for frame i and stops at flow time theta2 (as HumePolicy.think
does), and its target is the dataset's h actions from frame i+o, seen from frame i+o. The value
head reads System 2's prefix embeddings of frames i and i+1 (detached) and scores the dataset
chunk of frame i; its target critics follow by Polyak averaging after every step. Given
demonstrations and rollouts together, the value head learns from all frames (the rollouts' failures
are what it needs), System 1 from the demonstrations only. With train_system1 false System 1
stays as loaded and only the value head trains (System 2's sampling, needed only for System 1's
start, is skipped).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hume.models.ranking import bradley_terry_loss, pairwise_accuracy
from hume.policy import HumePolicy
from hume.policy.hume_policy import plain_sample_schedule
from hume.policy.transforms import pad_to
from hume.train.config import TrainConfig
from hume.train.data import TrainingData


class System1ValueStage(nn.Module):
    name = "system1_value"

    def __init__(
        self,
        policy: HumePolicy,
        train_system1: bool = True,
        bootstrap: bool = True,
        ranking: float = 0.0,
        regression: bool = True,
        ranking_batch: int = 16,
    ):
        """ranking: the Bradley-Terry loss's weight on labelled thinks (0: none); regression
        false: the critics learn from that loss alone (no TD/Monte-Carlo target, CQL, actor)."""
        super().__init__()
        self.config = policy.config
        self.train_system1 = train_system1
        self.bootstrap = bootstrap
        self.ranking, self.regression, self.ranking_batch = ranking, regression, ranking_batch
        self.scheduled = ("system1",) if train_system1 else ()
        policy.requires_grad_(False).eval()
        self.system2 = policy.system2
        self.system1 = policy.system1.train(train_system1).requires_grad_(train_system1)
        self.value_head = policy.value_head.train().requires_grad_(True)
        self.value_head.target_critics.requires_grad_(False)

    def batch(self, data: TrainingData, idx: Tensor, generator: torch.Generator, augment: bool) -> dict:
        """The frames' transitions (unless only the ranking loss trains), and labelled thinks
        when the ranking loss is on and `data` has them (a validation set may not)."""
        ranks = self.ranking > 0 and data.labels is not None
        batch = {}
        if self.regression or self.train_system1 or not ranks:
            batch = data.system1_value_batch(idx, generator, augment, system1=self.train_system1)
        if ranks:
            batch.update(data.ranking_batch(self.ranking_batch, generator, augment))
        return batch

    @torch.no_grad()
    def system2_start(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The frozen System 2 on frame i: prefix embeddings [B, P, D], their mask [B, P], and
        System 1's start [B, h, A1]: the slice from offset o of the chunk sampled from the
        batch's noise down to theta2."""
        cfg, s2 = self.config, self.system2
        prefix, prefix_mask = s2.embed_prefix(
            batch["s2.images"], batch["s2.image_masks"], batch["s2.tokens"], batch["s2.token_masks"]
        )
        cache = s2.encode_prefix(prefix, prefix_mask)
        b = prefix.shape[0]
        plan = {
            k: v.to(prefix.device).expand(b)[:, None]
            for k, v in plain_sample_schedule(cfg, cfg.theta2).items()
        }
        dtype = batch["s2.noise"].dtype
        chunk = s2.sample(
            cache,
            batch["s2.state"],
            batch["s2.noise"][:, None],
            plan["t0"].to(dtype),
            plan["dt"].to(dtype),
            plan["steps"],
            plan["temperature"].to(dtype),
        )
        rows = batch["s1.offset"][:, None] + torch.arange(cfg.s1_horizon, device=prefix.device)
        # System 1 reads the padded dims too when System 2 samples them (not pinned).
        width = cfg.s1_action_dim if not cfg.system2.pin_padded_actions else cfg.action_dim
        start = chunk[:, 0][torch.arange(b, device=prefix.device)[:, None], rows, :width]
        return prefix, prefix_mask, pad_to(start, cfg.s1_action_dim)

    def system1_loss(
        self, batch: dict[str, Tensor], start: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        images = {cam: batch[f"s1.images.{cam}"] for cam in self.system1.cameras}
        return self.system1.loss(
            images,
            batch["s1.state_history"],
            batch["s1.offset"],
            start,
            batch["s1.actions"],
            mask=~batch["s1.is_pad"] & batch["s1.imitate"][:, None],
            generator=generator,
        )

    def forward(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        out = self.transition_losses(batch, generator) if "s2.images" in batch else {}
        if "rank.candidates" in batch:
            ranked = self.ranking_losses(batch)
            total = ranked["ranking"] * self.ranking
            out = {**out, **ranked, "loss": out["loss"] + total if out else total}
        return out

    def ranking_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Bradley-Terry over the labelled thinks' candidate pairs, for every online critic, and the
        share of pairs the pessimistic value (the selection's) orders right."""
        with torch.no_grad():
            prefix, prefix_mask = self.system2.embed_prefix(
                batch["rank.images"],
                batch["rank.image_masks"],
                batch["rank.tokens"],
                batch["rank.token_masks"],
            )
        q = self.value_head(prefix, prefix_mask, batch["rank.candidates"])
        right, pairs = pairwise_accuracy(q.detach().min(dim=0).values, batch["rank.rates"])
        return {
            "ranking": bradley_terry_loss(q, batch["rank.rates"]),
            "ranking_accuracy": q.new_tensor(right / pairs if pairs else float("nan")),
        }

    def transition_losses(
        self, batch: dict[str, Tensor], generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        """System 1's cascade loss and, unless the critics learn from rankings alone, the value
        head's Cal-QL losses on the frames' transitions."""
        with torch.no_grad():
            if self.train_system1:
                prefix, prefix_mask, start = self.system2_start(batch)
            else:
                prefix, prefix_mask = self.system2.embed_prefix(
                    batch["s2.images"], batch["s2.image_masks"], batch["s2.tokens"], batch["s2.token_masks"]
                )
            next_prefix, next_mask = self.system2.embed_prefix(
                batch["vh.next.images"],
                batch["vh.next.image_masks"],
                batch["vh.next.tokens"],
                batch["vh.next.token_masks"],
            )
        if self.train_system1:
            s1_loss = self.system1_loss(batch, start, generator)
        else:
            s1_loss = prefix.new_zeros(())
        if not self.regression:
            return {"loss": s1_loss, "system1": s1_loss}
        vh = self.value_head.losses(
            prefix,
            prefix_mask,
            batch["vh.actions"],
            batch["vh.reward"],
            batch["vh.done"],
            batch["vh.mc_return"],
            next_prefix,
            next_mask,
            generator=generator,
            bootstrap=self.bootstrap,
        )
        q = vh.critic.q_data.min(dim=0).values  # what the critic loss computed: no second pass
        return {
            "loss": s1_loss + vh.total,
            "system1": s1_loss,
            "critic": vh.critic.loss,
            "td": vh.critic.td,
            "cql": vh.critic.cql,
            "actor": vh.actor,
            "temperature_loss": vh.temperature,
            "temperature": self.value_head.temperature.detach(),
            "calibrated": vh.critic.calibrated,
            "q_data_mean": q.mean(),
            "q_data_max": q.max(),
            "mc_return_mean": batch["vh.mc_return"].mean(),
        }

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        o = cfg.optim
        value_params = [p for p in self.value_head.parameters() if p.requires_grad]
        # Critics, actor and temperature: Adam at a constant rate. The losses route each part's
        # gradient to its own parameters only, so one optimiser serves all three.
        optimizers: dict[str, torch.optim.Optimizer] = {
            "value_head": torch.optim.Adam(value_params, lr=cfg.critic_lr)
        }
        if self.train_system1:
            optimizers["system1"] = torch.optim.AdamW(
                self.system1.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
            )
        return optimizers

    def after_step(self) -> None:
        # Selection reads the target critics: with rankings alone (no bootstrapped target to keep
        # steady) they are the online ones.
        self.value_head.update_targets(None if self.regression else 1.0)
