"""What a video of an episode shows, one frame per control step: the observation's cameras side by
side (by name: agent view, then wrist), scaled up to a viewable size, under a banner with the
episode, the step and what the control loop did that step.

The banner's colour marks the step at a glance, even in a video playing fast: red a hold (no valid
chunk, the robot stands still), amber a chunk switch (the step's new plan comes from a chunk the
previous plan did not), blue a new plan refined from the same chunk, grey the rest of a plan.
Evaluations (sim/episode.py) and the System-1 node both draw their frames here, so their videos
read alike; hume/data/video.py writes them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hume.constants import IMAGE_PREFIX

# LIBERO renders at 64-256 px; smaller views are repeated (nearest neighbour: pixels stay sharp)
# up to at least this height.
MIN_HEIGHT = 256
BANNER = 20
FONT = ImageFont.load_default(size=14)
# The banner's label and colour by what the step did (the control schedule's kind of the step,
# or "chunk_switch"); any other step, or one whose kind is not known, is plain.
MARKS = {
    "hold": ("HOLD", (190, 30, 30)),
    "chunk_switch": ("NEW CHUNK", (215, 145, 0)),
    "refined": ("new plan", (40, 100, 190)),
}
PLAIN = ("", (40, 40, 40))


def episode_frame(
    obs: dict, step: int, episode: int | None = None, kind: str | None = None, chunk_switch: bool = False
) -> np.ndarray:
    """uint8 `[H, W, 3]` (H, W even, as H.264 wants them): `kind` is the control schedule's for
    the step ("refined", "plan" or "hold"; None where no schedule decides, e.g. a scripted
    expert), `chunk_switch` whether the step's new plan came from a new chunk."""
    images = [v for k, v in sorted(obs.items()) if k.startswith(IMAGE_PREFIX)]
    if not images:
        raise ValueError(f"no camera images ({IMAGE_PREFIX}*) in the observation to film")
    views = np.concatenate(images, axis=1)
    scale = -(-MIN_HEIGHT // views.shape[0])
    views = views.repeat(scale, axis=0).repeat(scale, axis=1)
    label, colour = MARKS.get("chunk_switch" if chunk_switch else kind or "", PLAIN)
    banner = Image.new("RGB", (views.shape[1], BANNER), colour)
    where = f"step {step}" if episode is None else f"episode {episode}  step {step}"
    ImageDraw.Draw(banner).text((6, 2), f"{where}  {label}", fill=(255, 255, 255), font=FONT)
    frame = np.concatenate([np.asarray(banner), views])
    return np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
