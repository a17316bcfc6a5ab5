"""What the policy a node serves takes and gives, read from its config, and the checks of received
messages against it: a chunk System 1's policy cannot refine never replaces the one it has, and an
observation System 2's policy cannot use is answered with an error message, not thought on.

The protocol (protocol.py) checks what any message must be; these checks need the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hume.constants import IMAGE_KEY, STATE_KEY
from hume.runtime.protocol import MessageError

# Normalised (model-space) actions are in units of the training data's standard deviation: a chunk
# with a value beyond this is not something a policy sampled. (What reaches the robot is bounded
# again, in robot units, by the envelope: hume/runtime/envelope.py.)
MAX_ABS_ACTION = 100.0


@dataclass(frozen=True)
class PolicySpec:
    cameras: tuple[str, ...] = ()
    state_dim: int | None = None
    chunk_size: int | None = None
    action_dim: int | None = None
    # Width of a chunk's `padding` array: System 2's padded action dims, sent only when the
    # policy's System 2 samples them (system2.pin_padded_actions false); 0: no padding array.
    padded_dims: int = 0

    @classmethod
    def of(cls, policy) -> PolicySpec:
        """From `policy.config` (a HumeConfig, or a plug-in policy's config with the fields the
        nodes read: docs/deployment.md); what it does not say is not checked."""
        cfg = getattr(policy, "config", None)
        if cfg is None or not hasattr(cfg, "chunk_size"):
            return cls()
        pinned = getattr(getattr(cfg, "system2", None), "pin_padded_actions", True)
        return cls(
            cameras=tuple(getattr(cfg, "cameras", ())),
            state_dim=getattr(cfg, "state_dim", None),
            chunk_size=cfg.chunk_size,
            action_dim=cfg.action_dim,
            padded_dims=0 if pinned else cfg.max_action_dim - cfg.action_dim,
        )

    def describe_observation(self) -> str:
        cams = ", ".join(IMAGE_KEY.format(c) for c in self.cameras) or "any cameras"
        state = f"[{self.state_dim}]" if self.state_dim is not None else "[d]"
        return f"{cams} (uint8 [H, W, 3], any size) and {STATE_KEY} float32 {state}"

    def check_observation(self, arrays: dict[str, np.ndarray]) -> None:
        """MessageError("bad_observation") naming what the policy needs, if the observation lacks it."""
        missing = [IMAGE_KEY.format(c) for c in self.cameras if IMAGE_KEY.format(c) not in arrays]
        state = arrays[STATE_KEY]
        if missing or (self.state_dim is not None and state.shape != (self.state_dim,)):
            got = sorted(k for k in arrays if k != STATE_KEY)
            raise MessageError(
                "bad_observation",
                f"this System 2 needs {self.describe_observation()}; got cameras {got} and "
                f"{STATE_KEY} {list(state.shape)}",
            )

    def chunk_shapes(self) -> dict[str, tuple[int, int]]:
        if self.chunk_size is None or self.action_dim is None:
            return {}
        shapes = {"actions": (self.chunk_size, self.action_dim)}
        if self.padded_dims:
            shapes["padding"] = (self.chunk_size, self.padded_dims)
        return shapes

    def check_chunk(self, arrays: dict[str, np.ndarray]) -> None:
        """MessageError("wrong_shape" or "out_of_range") for a chunk this policy cannot refine."""
        expected = self.chunk_shapes()
        if expected:
            got = {name: arrays[name].shape for name in ("actions", "padding") if name in arrays}
            if got != expected:
                raise MessageError(
                    "wrong_shape", f"chunk arrays {got}, this System 1's policy needs {expected}"
                )
        for name in ("actions", "padding"):
            if name in arrays and arrays[name].size and np.abs(arrays[name]).max() > MAX_ABS_ACTION:
                raise MessageError(
                    "out_of_range",
                    f"chunk {name} reach {np.abs(arrays[name]).max():.3g} (limit {MAX_ABS_ACTION})",
                )
