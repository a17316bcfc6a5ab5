"""Simulator steps per second, side by side: LIBERO in this process, Meta-World and robosuite 1.5
behind the env server, each with both cameras rendered at the same size, the hold action stepped.
The policy's cost is the same in every simulator, so this is what differs between them.

Usage: .venv/bin/python scripts/sim_throughput.py [--steps 100] [--image-size 64] [--fast-render]
Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np

from sim.suites import make_env

log = logging.getLogger("sim_throughput")
# (suite, task, action width): one pick-and-place-like task of each.
SIMULATORS = (("libero_object", 0, 7), ("metaworld_mt10", 2, 4), ("robosuite_standard", 0, 7))


def measure(suite: str, task: int, width: int, steps: int, image_size: int, fast_render: bool) -> dict:
    t0 = time.monotonic()
    env = make_env(suite, task, image_size=image_size, fast_render=fast_render, max_steps=steps)
    try:
        created = time.monotonic() - t0
        t0 = time.monotonic()
        env.reset(0)
        reset = time.monotonic() - t0
        hold = np.zeros(width, np.float32)
        hold[-1] = -1.0
        t0 = time.monotonic()
        for _ in range(steps):
            env.step(hold)
        per_step = (time.monotonic() - t0) / steps
    finally:
        env.close()
    return {"suite": suite, "create_s": round(created, 2), "reset_s": round(reset, 2),
            "step_ms": round(per_step * 1000, 1), "steps_per_s": round(1 / per_step, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--fast-render", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for suite, task, width in SIMULATORS:
        rows.append(measure(suite, task, width, args.steps, args.image_size, args.fast_render))
        row = rows[-1]
        log.info("%-20s %6.1f ms/step  %6.1f steps/s  (reset %.2f s, start %.2f s)", suite,
                 row["step_ms"], row["steps_per_s"], row["reset_s"], row["create_s"])  # fmt: skip
    out = {"image_size": args.image_size, "fast_render": args.fast_render, "results": rows}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
