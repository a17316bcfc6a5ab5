"""`hume convert --from hume|pi0 SRC --output DST`: a released checkpoint -> our checkpoint folder.

DST holds config.json, model.safetensors, stats.json, tokenizer/ and provenance.json (where it came
from, every source tensor not used and why) and loads with `HumePolicy.from_pretrained(DST)` with no
other flag. See docs/weights.md.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from hume.config import ConfigError, parse_config

FORMATS = ("hume", "pi0")


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    # The source's format: "hume" (the authors' released Hume checkpoints) or "pi0" (openpi PyTorch
    # or LeRobot pi0). `--from FORMAT` on the command line.
    source_format: str = ""
    # The source checkpoint folder (the positional SRC).
    source: str = ""
    # The folder to write.
    output: str = ""
    # A tokenizer folder for sources that ship none (openpi's pi0 checkpoints).
    tokenizer: str = ""
    # Map the gripper output a -> 1 - 2a (the authors' LIBERO checkpoints predict it in [0, 1]).
    postprocess_gripper: bool = True
    # pi0 only. Which assets/<asset_id>/norm_stats.json of an openpi checkpoint to use.
    asset_id: str = ""
    # Source camera -> ours, e.g. "base_0_rgb=agentview,left_wrist_0_rgb=wrist,right_wrist_0_rgb="
    # (empty: leave the slot out). Default: LIBERO's names mapped to ours.
    cameras: str = ""
    # The action horizon when the source does not state it (openpi training checkpoints); 0 = its own.
    chunk_size: int = 0
    # Control steps between two System-2 calls; 0 = the source's (openpi LIBERO: 5).
    replan_steps: int = 0
    # A model config (YAML) whose value-head and System-1 sizes the fresh networks take
    # (default configs/model/full.yaml).
    fresh_config: str = ""

    def validate(self) -> None:
        if self.source_format not in FORMATS:
            raise ConfigError(f"--from must be one of {FORMATS}, got {self.source_format!r}")
        if not self.source:
            raise ConfigError(
                "name the source checkpoint folder: hume convert --from FORMAT SRC --output DST"
            )
        if not self.output:
            raise ConfigError("--output DST is required: the folder to write the converted checkpoint to")


def _from_and_source(parser) -> None:
    """`--from FORMAT` and a positional SRC, as the command reads in docs, for two config keys."""
    parser.add_argument("--from", dest="source_format", metavar="FORMAT", help="= --source_format")
    parser.add_argument("source", nargs="?", metavar="SRC", help="= --source")


def main(argv: Sequence[str]) -> int:
    cfg = parse_config(ConvertConfig, argv, prog="hume convert", extra_args=_from_and_source)
    from pathlib import Path

    from hume.convert.common import write_checkpoint
    from hume.models.checkpoint_tensors import CheckpointError

    source = Path(cfg.source)
    if not source.is_dir():
        raise ConfigError(f"source checkpoint folder not found: {source}")
    try:
        from hume.convert.pi0 import parse_camera_map

        # Keyword arguments for either converter, checked where they land (convert_pi0's signature).
        pi0_options: dict[str, Any] = dict(
            tokenizer_dir=Path(cfg.tokenizer) if cfg.tokenizer else None,
            asset_id=cfg.asset_id or None,
            cameras=parse_camera_map(cfg.cameras) if cfg.cameras else None,
            chunk_size=cfg.chunk_size or None,
            replan_steps=cfg.replan_steps or None,
            fresh_config=cfg.fresh_config or None,
        )
        if cfg.source_format == "hume":
            from hume.convert.hume_format import convert_hume

            conversion = convert_hume(source, postprocess_gripper=cfg.postprocess_gripper, **pi0_options)
        else:
            from hume.convert.pi0 import convert_pi0

            conversion = convert_pi0(source, **pi0_options)
        out = write_checkpoint(conversion, Path(cfg.output))
    except (CheckpointError, ValueError) as e:
        print(f"hume convert: {e}", file=sys.stderr)
        return 2
    print(
        f"{cfg.source_format} checkpoint {source} -> {out} ({len(conversion.dropped)} source tensors "
        f"not used: see {out / 'provenance.json'})"
    )
    return 0
