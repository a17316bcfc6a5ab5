"""`hume train --config configs/train/NAME.yaml [--key=value ...] [--output DIR]`.

Stage `system2` trains System 2 by flow matching; stage `system1_value` (System 2 frozen, from
`init_from`) trains System 1's cascade and the value-query head (Cal-QL). Checkpoints go to
DIR/step_XXXXXX/ and load with `HumePolicy.from_pretrained`; running the same command again
resumes from the newest one. Multi-GPU: `accelerate launch -m hume.cli.main train ...` (data
parallel) or `torchrun --nproc_per_node=N -m hume.cli.main train ... --distributed=fsdp` (sharded).
See docs/training.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from hume.config import parse_config


def main(argv: Sequence[str]) -> int:
    from hume.train.config import TrainConfig

    cfg = parse_config(TrainConfig, argv, prog="hume train")
    from hume.train.trainer import train

    try:
        result = train(cfg)
    # Unreadable datasets and checkpoints and mismatched shapes raise these, with what to fix.
    except (FileNotFoundError, ValueError) as e:
        print(f"hume train: {e}", file=sys.stderr)
        return 2
    losses = {k: round(v, 6) for k, v in result.losses.items() if not k.startswith("lr/")}
    print(f"stage {cfg.stage}: {result.step} steps, {result.seconds:.0f} s in this run")
    print(f"checkpoint: {result.checkpoint}")
    if result.plot is not None:
        print(f"loss curves: {result.plot}")
    print(
        json.dumps(
            {
                "stage": cfg.stage,
                "step": result.step,
                "checkpoint": str(result.checkpoint),
                "seconds": round(result.seconds, 1),
                "losses": losses,
                # this process's parameters, gradients and optimizer state (its shards when sharded)
                "memory": result.memory,
            }
        )
    )
    return 0
