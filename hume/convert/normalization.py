"""A source's normalisation statistics as the mean/std pair our Normalizer applies.

LeRobot keeps them in one of two places: buffers in the weights (`normalize_inputs.buffer_*`,
`normalize_targets.*`, `unnormalize_outputs.*`; older versions and the authors' Hume) or the
processor pipelines' files (`policy_preprocessor.json` + `*_normalizer_processor.safetensors`; newer
versions). openpi keeps mean/std in `assets/<asset_id>/norm_stats.json`. Every affine normalisation
(mean/std, min/max, quantiles) becomes (x - mean) / std, with the source's epsilon folded into std so
that normalised values match.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hume.constants import ACTION_KEY, STATE_KEY
from hume.convert.common import read_json
from hume.models.checkpoint_tensors import CheckpointError, SourceTensors

BUFFER_MODULES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")
LEROBOT_EPS = 1e-8  # LeRobot's Normalize: (x - mean) / (std + 1e-8)

WHY_BUFFERS_SUPERSEDED = (
    "normalisation buffer of an older LeRobot version; the processor statistics saved beside it are the "
    "ones LeRobot applies and were taken instead"
)
WHY_TRAINING_COPY = (
    "training-time copy of the statistics (checked equal to unnormalize_outputs', taken instead)"
)
WHY_IMAGE_BUFFER = "images are not normalised (VISUAL: IDENTITY)"


def pipeline(source: Path, name: str) -> dict:
    """A LeRobot processor pipeline's JSON (`policy_preprocessor.json`, ...), or {} when absent."""
    path = source / name
    return read_json(path) if path.is_file() else {}


def step_name(step: dict) -> str:
    return str(step.get("registry_name") or step.get("class") or "")


def lerobot_stats(
    source: Path, tensors: SourceTensors, config: dict, state_dim: int, action_dim: int
) -> tuple[dict, dict]:
    """(stats, how they were read) of a LeRobot policy folder: the processor pipelines' statistics
    when saved (their buffers, if any, are dropped as superseded), else the buffers in the weights."""
    buffers = [k for k in tensors.keys() if k.startswith(BUFFER_MODULES)]
    modes = {k: str(v).upper() for k, v in (config.get("normalization_mapping") or {}).items()}
    processor = _processor_stats(source, pipeline(source, "policy_preprocessor.json"), "normalizer_processor")
    if processor is None:
        processor = _processor_stats(
            source, pipeline(source, "policy_postprocessor.json"), "unnormalizer_processor"
        )
    features = {**config.get("input_features", {}), **config.get("output_features", {})}
    visual = any(str(spec.get("type", "")).upper() == "VISUAL" for spec in features.values())
    visual = visual or any(k.split(".")[1].startswith("buffer_observation_images") for k in buffers)
    if processor is not None:
        values, step_modes, eps, where = processor
        modes = step_modes or modes
        for key in buffers:
            tensors.drop(key, WHY_BUFFERS_SUPERSEDED)
    elif buffers:
        eps, where = LEROBOT_EPS, tensors.where(buffers[0])
    else:
        raise CheckpointError(
            f"{source}: no normalisation statistics (neither policy_preprocessor.json with a normalizer step "
            "nor normalize_inputs/... buffers in the weights)"
        )
    if visual and modes.get("VISUAL", "IDENTITY") != "IDENTITY":
        raise CheckpointError(
            f"{where}: images are normalised ({modes['VISUAL']}); π0's images (and ours) are only scaled "
            "to [-1, 1]"
        )
    if processor is None:
        values = _buffer_stats(tensors, buffers)
    state_mode, action_mode = modes.get("STATE", "MEAN_STD"), modes.get("ACTION", "MEAN_STD")
    stats = {
        STATE_KEY: _affine(values.get(STATE_KEY, {}), state_mode, eps, state_dim, where, STATE_KEY),
        ACTION_KEY: _affine(values.get(ACTION_KEY, {}), action_mode, eps, action_dim, where, ACTION_KEY),
    }
    return stats, {"STATE": state_mode, "ACTION": action_mode, "eps": eps}


def mean_std(values: dict, eps: float, where: Path, name: str) -> dict:
    """A source that divides by std + eps, as our (x - mean) / std."""
    mean, std = _stat(values, "mean", where, name), _stat(values, "std", where, name)
    if len(mean) != len(std):
        raise CheckpointError(f"{where}: mean and std of {name} differ in length")
    return {"mean": mean, "std": [s + eps for s in std]}


def _processor_stats(source: Path, steps: dict, name: str):
    """(feature -> stat -> list, norm_map, eps, file) of a pipeline's (un)normalizer step, or None."""
    from safetensors.torch import load_file

    for step in steps.get("steps", []):
        if step_name(step) != name:
            continue
        cfg = step.get("config", {})
        state_file = step.get("state_file")
        if not state_file or not (source / state_file).is_file():
            raise CheckpointError(f"{source}: the {name} step's statistics file {state_file!r} is missing")
        values: dict[str, dict[str, list[float]]] = {}
        for key, tensor in load_file(str(source / state_file)).items():
            feature, stat = key.rsplit(".", 1)
            values.setdefault(feature, {})[stat] = tensor.float().reshape(-1).tolist()
        norm_map = {k.upper(): str(v).upper() for k, v in (cfg.get("norm_map") or {}).items()}
        return values, norm_map, float(cfg.get("eps", LEROBOT_EPS)), source / state_file
    return None


def _buffer_stats(tensors: SourceTensors, buffers: list[str]) -> dict:
    """Buffers `<module>.buffer_<feature>.<stat>`. A statistic saved twice (the action's, for
    training's targets and inference's outputs) is taken from `unnormalize_outputs`, what inference
    applies; the other copy must agree and is dropped. Images' buffers are dropped (images are only
    scaled; the caller refused normalised ones)."""
    values: dict[str, dict[str, list[float]]] = {}
    for key in sorted(buffers, key=lambda k: not k.startswith("unnormalize_outputs.")):
        _, buffer, stat = key.split(".", 2)
        feature = buffer.removeprefix("buffer_")
        if feature.startswith("observation_images"):
            tensors.drop(key, WHY_IMAGE_BUFFER)
            continue
        feature = {"observation_state": STATE_KEY}.get(feature, feature)
        known = values.get(feature, {}).get(stat)
        if known is not None:
            if not torch.allclose(torch.tensor(known), tensors.peek(key).float().reshape(-1)):
                raise CheckpointError(
                    f"{tensors.where(key)}: {key!r} disagrees with another copy of {feature}.{stat}"
                )
            tensors.drop(key, WHY_TRAINING_COPY)
            continue
        tensor = tensors.take(key).float().reshape(-1)
        if torch.isinf(tensor).any():
            raise CheckpointError(
                f"{tensors.where(key)}: {key!r} is still infinite: the policy was saved without statistics"
            )
        values.setdefault(feature, {})[stat] = tensor.tolist()
    return values


def _affine(values: dict, mode: str, eps: float, dim: int, where: Path, name: str) -> dict:
    """LeRobot's normalisation of one feature as our mean/std: (x - mean) / std."""

    def pair(lo: str, hi: str) -> dict:
        low, high = torch.tensor(_stat(values, lo, where, name)), torch.tensor(_stat(values, hi, where, name))
        span = high - low
        # LeRobot replaces an empty range by eps; x -> 2 (x - lo) / span - 1 is (x - centre) / (span / 2).
        span = torch.where(span == 0, torch.full_like(span, eps), span)
        return {"mean": ((low + high) / 2).tolist(), "std": (span / 2).tolist()}

    if mode == "MEAN_STD":
        out = mean_std(values, eps, where, name)
    elif mode == "MIN_MAX":
        out = pair("min", "max")
    elif mode == "QUANTILES":
        out = pair("q01", "q99")
    elif mode == "QUANTILE10":
        out = pair("q10", "q90")
    elif mode == "IDENTITY":
        out = {"mean": [0.0] * dim, "std": [1.0] * dim}
    else:
        raise CheckpointError(f"{where}: normalisation mode {mode!r} of {name} is not supported")
    if len(out["mean"]) != dim:
        raise CheckpointError(
            f"{where}: statistics of {name} have {len(out['mean'])} dims, the feature {dim}"
        )
    if name == ACTION_KEY and "min" in values and "max" in values and len(values["min"]) == dim:
        # The value head's action box (the data's range), as our own checkpoints carry it.
        out.update(min=list(values["min"]), max=list(values["max"]))
    return out


def _stat(values: dict, stat: str, where: Path, name: str) -> list[float]:
    if stat not in values:
        raise CheckpointError(f"{where}: no {stat!r} statistics for {name}")
    return [float(v) for v in values[stat]]
