"""What a π0 folder says beside its weights: chunk size, sampler steps, prompt length, cameras, robot
widths, normalisation statistics and where its tokenizer is, from openpi's or LeRobot's files.

openpi keeps `config.json` (action_horizon, variants) and the statistics in
`assets/<asset_id>/norm_stats.json` (mean/std/q01/q99 of "state" and "actions"; π0 uses mean/std);
its training checkpoints ship no tokenizer. LeRobot keeps `config.json` (type "pi0", features,
chunk_size, ...) and its statistics in the weights' buffers or in its processor pipelines' files
(hume/convert/normalization.py); newer versions save the tokenizer to `tokenizer/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hume.constants import ACTION_KEY, IMAGE_PREFIX, STATE_KEY
from hume.convert.cameras import check_cameras, our_camera
from hume.convert.common import need, read_json
from hume.convert.normalization import lerobot_stats, mean_std, pipeline, step_name
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors

# π0's flow settings that our System 2 hard-codes (flow.sinusoidal_embedding's periods).
TIME_PERIODS = (4e-3, 4.0)
OPENPI_TOKEN_LEN = 48  # openpi's Pi0Config.max_token_len for π0 (200 is π0.5's)
OPENPI_REPLAN_STEPS = 5  # openpi's LIBERO client executes 5 actions of each chunk, then replans
OPENPI_EPS = 1e-6  # openpi's Normalize: (x - mean) / (std + 1e-6)
# openpi's three image slots, in the order π0 reads them; for LIBERO the third is fed blank and
# masked (openpi's LiberoInputs), which is the same as leaving it out.
OPENPI_SLOTS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
OPENPI_LIBERO_CAMERAS = {"base_0_rgb": "agentview", "left_wrist_0_rgb": "wrist", "right_wrist_0_rgb": ""}
LEROBOT_RECORDED = (
    "type",
    "chunk_size",
    "n_action_steps",
    "max_state_dim",
    "max_action_dim",
    "num_steps",
    "num_inference_steps",
    "tokenizer_max_length",
    "resize_imgs_with_padding",
    "image_resolution",
    "paligemma_variant",
    "action_expert_variant",
    "dtype",
    "normalization_mapping",
    "input_features",
    "output_features",
)


@dataclass
class Settings:
    """What the source's files beside the weights say (π0's I/O around System 2)."""

    chunk_size: int
    num_steps: int
    max_token_len: int
    image_size: int | None  # the resize target the source states, checked against the tensors
    cameras: list[tuple[str, str]]  # (source image name, our camera name; "" = a slot π0 sees masked)
    state_dim: int
    action_dim: int
    stats: dict
    replan_steps: int
    tokenizer_dirs: list[Path] = field(default_factory=list)  # shipped tokenizer folders, best first
    provenance: dict = field(default_factory=dict)


# ----- openpi -------------------------------------------------------------------------------------
def openpi_settings(
    source: Path,
    asset_id: str | None,
    cameras: Mapping[str, str] | None,
    replan_steps: int | None,
    chunk_size: int | None,
) -> Settings:
    config = read_json(source / "config.json") if (source / "config.json").is_file() else {}
    horizon = config.get("action_horizon")
    if horizon is not None and chunk_size is not None and horizon != chunk_size:
        raise CheckpointError(
            f"{source / 'config.json'}: action_horizon is {horizon}, the chunk size asked for is {chunk_size}"
        )
    given = horizon if horizon is not None else chunk_size
    if given is None:
        raise CheckpointError(
            f"{source}: no config.json stating action_horizon (openpi's training checkpoints carry none): "
            "pass the chunk size π0 was trained with (openpi's default is 50)"
        )
    chunk = int(given)

    norm_file, asset = _norm_stats_file(source, asset_id)
    raw = read_json(norm_file).get("norm_stats")
    if not isinstance(raw, dict) or "state" not in raw or "actions" not in raw:
        raise CheckpointError(f"{norm_file}: expected {{'norm_stats': {{'state': ..., 'actions': ...}}}}")
    stats = {
        STATE_KEY: mean_std(raw["state"], OPENPI_EPS, norm_file, "state"),
        ACTION_KEY: mean_std(raw["actions"], OPENPI_EPS, norm_file, "actions"),
    }
    if cameras is None:
        if "libero" not in asset.lower():
            raise CheckpointError(
                f"{norm_file}: say which of π0's image slots {', '.join(OPENPI_SLOTS)} your robot fills and "
                "with which of our cameras (e.g. base_0_rgb=agentview,left_wrist_0_rgb=wrist,"
                "right_wrist_0_rgb= for a slot left blank); only LIBERO's is known"
            )
        cameras = OPENPI_LIBERO_CAMERAS
    unknown = sorted(set(cameras) - set(OPENPI_SLOTS))
    if unknown:
        raise CheckpointError(f"{source}: openpi's π0 has image slots {OPENPI_SLOTS}, not {unknown}")
    return Settings(
        chunk_size=chunk,
        num_steps=10,
        max_token_len=OPENPI_TOKEN_LEN,
        image_size=None,
        cameras=check_cameras([(slot, cameras.get(slot, "")) for slot in OPENPI_SLOTS], source),
        state_dim=len(stats[STATE_KEY]["mean"]),
        action_dim=len(stats[ACTION_KEY]["mean"]),
        stats=stats,
        replan_steps=replan_steps or OPENPI_REPLAN_STEPS,
        tokenizer_dirs=[source / "tokenizer", source],
        provenance={
            "asset_id": asset,
            "norm_stats": str(norm_file.relative_to(source)),
            "openpi_config": config,
            "normalization": f"mean/std (std + {OPENPI_EPS})",
        },
    )


def _norm_stats_file(source: Path, asset_id: str | None) -> tuple[Path, str]:
    assets = source / "assets"
    found = sorted(assets.rglob("norm_stats.json")) if assets.is_dir() else []
    ids = [str(p.parent.relative_to(assets)) for p in found]
    if asset_id is not None:
        if asset_id not in ids:
            raise CheckpointError(
                f"{assets}: no {asset_id}/norm_stats.json (asset ids here: {ids or 'none'})"
            )
        return assets / asset_id / "norm_stats.json", asset_id
    if not found:
        raise CheckpointError(
            f"{source}: no assets/<asset_id>/norm_stats.json (openpi's normalisation statistics)"
        )
    if len(found) > 1:
        raise CheckpointError(f"{assets}: several asset ids {ids}; name the robot's asset id")
    return found[0], ids[0]


# ----- LeRobot ------------------------------------------------------------------------------------
def lerobot_settings(
    source: Path,
    tensors: SourceTensors,
    cameras: Mapping[str, str] | None,
    replan_steps: int | None,
    chunk_size: int | None,
) -> Settings:
    path = source / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{source}: no config.json (a LeRobot pi0 policy folder has one)")
    config = read_json(path)
    if config.get("type") not in ("pi0", "system2"):  # system2: the authors' Hume-System2 release
        raise CheckpointError(f"{path}: type is {config.get('type')!r}, not 'pi0'")
    _refuse_lerobot_options(config, path)
    chunk = int(need(config, "chunk_size", path))
    if chunk_size is not None and chunk_size != chunk:
        raise CheckpointError(f"{path}: chunk_size is {chunk}, the chunk size asked for is {chunk_size}")
    inputs, outputs = need(config, "input_features", path), need(config, "output_features", path)
    state_dim = int(need(need(inputs, STATE_KEY, path), "shape", path)[-1])
    action_dim = int(need(need(outputs, ACTION_KEY, path), "shape", path)[-1])
    size = config.get("image_resolution", config.get("resize_imgs_with_padding"))
    if size is not None and (len(size) != 2 or size[0] != size[1]):
        raise CheckpointError(f"{path}: images resized to {size}; ours needs one square size")

    steps = pipeline(source, "policy_preprocessor.json").get("steps", [])
    rename: dict[str, str] = {}
    for step in steps:
        if step_name(step) == "rename_observations_processor":
            rename = step.get("config", {}).get("rename_map", {}) or {}
    stats, normalization = lerobot_stats(source, tensors, config, state_dim, action_dim)

    original = {v.removeprefix(IMAGE_PREFIX): k.removeprefix(IMAGE_PREFIX) for k, v in rename.items()}
    names = [k[len(IMAGE_PREFIX) :] for k in inputs if k.startswith(IMAGE_PREFIX)]
    if cameras is None:
        cameras = {n: "" if n.startswith("empty_camera_") else our_camera(original.get(n, n)) for n in names}
    unknown = sorted(set(cameras) - set(names))
    if unknown:
        raise CheckpointError(f"{path}: no image feature {unknown[0]!r} (the policy's images: {names})")

    tokenizer_dirs = []
    max_len = config.get("tokenizer_max_length", 48)
    for step in steps:
        if step_name(step) == "tokenizer_processor":
            cfg = step.get("config", {})
            max_len = cfg.get("max_length", max_len)
            name = cfg.get("tokenizer_name")
            if name and (source / name).is_dir():
                tokenizer_dirs.append(source / name)
    tokenizer_dirs += [source / "tokenizer", source]
    return Settings(
        chunk_size=chunk,
        num_steps=int(config.get("num_inference_steps", config.get("num_steps", 10))),
        max_token_len=int(max_len),
        image_size=None if size is None else int(size[0]),
        cameras=check_cameras([(n, cameras.get(n, "")) for n in names], path),
        state_dim=state_dim,
        action_dim=action_dim,
        stats=stats,
        replan_steps=replan_steps or int(config.get("n_action_steps", chunk)),
        tokenizer_dirs=tokenizer_dirs,
        provenance={
            "lerobot_config": {k: config.get(k) for k in LEROBOT_RECORDED if k in config},
            "normalization": normalization,
            "rename_map": rename,
        },
    )


def _refuse_lerobot_options(config: dict, path: Path) -> None:
    """Options that change π0's inputs or outputs in ways our policy does not reproduce."""
    for key in ("adapt_to_pi_aloha", "use_delta_joint_actions_aloha", "use_relative_actions"):
        if config.get(key):
            raise CheckpointError(
                f"{path}: {key} is set; the converted policy would not transform state/actions so"
            )
    if config.get("n_obs_steps", 1) != 1:
        raise CheckpointError(f"{path}: n_obs_steps is {config['n_obs_steps']}; π0 reads one observation")
    periods = (config.get("min_period", TIME_PERIODS[0]), config.get("max_period", TIME_PERIODS[1]))
    if tuple(float(p) for p in periods) != TIME_PERIODS:
        raise CheckpointError(f"{path}: time-embedding periods {periods}; ours are π0's {TIME_PERIODS}")
