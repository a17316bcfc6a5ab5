"""Best-of-N sampling cost of System 2: shared prefix cache + one batch vs the naive method.

For each N, side by side in one process, interleaved repeat by repeat, on the same inputs and noise:
  naive          every candidate on its own, the whole network (vision tower, prefix, expert)
                 re-run at every Euler step (`sample_naive` below);
  separate       every candidate on its own with its own prefix cache (N single-candidate thinks);
  shared_prefix  one prefix encoding, cache repeated N times, all candidates through the expert
                 in one batch (System2.sample, what HumePolicy.think does).
Times are the minimum over `repeats` (the least disturbed run on a shared machine); each row also
reports the largest difference between the naive and shared-prefix candidates, which must be
float noise. Only System 2 is timed (no value head).

With `checkpoint` (e.g. checkpoints/default), the whole `HumePolicy.think` of that checkpoint is
timed too (preprocessing, System 2, value head, selection), for each N and each of `paths`: eager
and fast (HumeConfig.compile, traced before timing), interleaved call by call on the same
observation and noise; the median of `repeats` calls is reported, with N / N=1 per path.
`sizes=[]` times the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hume.config import ConfigError
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system2 import System2Config

if TYPE_CHECKING:
    from torch import Tensor

    from hume.models.system2 import System2

log = logging.getLogger(__name__)

# A mid-size System 2 (224² images, 196 tokens per camera, ~30M parameters) to see how the gain
# scales with the prefix; still runs on CPU.
MID = HumeConfig(
    image_size=224,
    system2=System2Config(
        vision_width=192,
        vision_depth=4,
        vision_heads=4,
        vision_mlp_dim=768,
        patch_size=16,
        vlm_width=512,
        vlm_depth=6,
        vlm_mlp_dim=2048,
        num_heads=8,
        head_dim=64,
        expert_width=256,
        expert_mlp_dim=1024,
    ),
)
SIZES = {"tiny": HumeConfig(), "mid": MID}


@dataclass(frozen=True)
class Config:
    # Model sizes to measure: tiny (configs/model/tiny.yaml) and/or mid.
    sizes: tuple[str, ...] = ("tiny",)
    # Numbers of candidates; the N = 5 row of the first size is repeated at the top level of the JSON.
    candidates: tuple[int, ...] = (1, 2, 5, 10)
    # Timed runs per method and N (the minimum is reported), after `warmup` untimed ones.
    repeats: int = 5
    warmup: int = 1
    # Euler steps from t = 1 to 0.
    num_steps: int = 10
    # torch CPU threads (on a busy 2-core machine, 1 gives steadier numbers).
    threads: int = 2
    # torch device of the model, e.g. cuda.
    device: str = "cpu"
    # float32, bfloat16 or float16.
    dtype: str = "float32"
    # Seeds the random weights, inputs and noise.
    seed: int = 0
    # A few-second run (N = 1 and 5, 2 Euler steps, one repeat) to check the harness.
    smoke: bool = False
    # Print the result as one JSON object on the last stdout line.
    json: bool = False
    # Folder for the result (best-of-n.json); empty = no file.
    output: str = ""
    # A checkpoint folder whose whole think is timed per N and path (empty: none).
    checkpoint: str = ""
    # Inference paths of the checkpoint's think: eager and/or fast (HumeConfig.compile).
    paths: tuple[str, ...] = ("eager", "fast")

    def validate(self) -> None:
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown or not (self.sizes or self.checkpoint):
            raise ConfigError(f"sizes: unknown {unknown}; choose from {sorted(SIZES)} (or give a checkpoint)")
        if not self.paths or any(p not in ("eager", "fast") for p in self.paths):
            raise ConfigError(f"paths must name some of eager, fast; got {list(self.paths)}")
        if not self.candidates or min(self.candidates) < 1:
            raise ConfigError(f"candidates must be numbers >= 1, got {self.candidates}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.repeats < 1 or self.num_steps < 1 or self.threads < 1 or self.warmup < 0:
            raise ConfigError("repeats, num_steps and threads must be >= 1, warmup >= 0")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(self, candidates=(1, 5), repeats=1, warmup=0, num_steps=2)


def _seconds(fn: Callable[[], object], device) -> float:
    import torch

    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def sample_naive(
    s2: System2,
    images: Tensor,
    image_masks: Tensor,
    tokens: Tensor,
    token_masks: Tensor,
    state: Tensor,
    noise: Tensor,
    t0: Tensor,
    dt: Tensor,
    steps: Tensor,
    temperature: Tensor,
) -> Tensor:
    """The baseline best-of-N (as the authors' code samples): each candidate on its own,
    re-running the whole network (vision tower, prefix and suffix) at every Euler step. Same
    arguments (after System 2 and the prefix's inputs) and result as `System2.sample`."""
    import torch

    from hume.models import flow

    candidates = []
    with torch.no_grad():
        for i in range(noise.shape[1]):

            def velocity(x: Tensor, t: Tensor, start: Tensor = noise[:, i]) -> Tensor:
                prefix = s2.embed_prefix(images, image_masks, tokens, token_masks)
                return s2.pin_padding(s2.velocity_joint(*prefix, state, x, t), start)

            candidates.append(
                flow.euler_integrate_steps(
                    velocity, noise[:, i], t0[:, i], dt[:, i], steps[:, i], temperature[:, i]
                )
            )
    return torch.stack(candidates, 1)


def measure(size: str, cfg: Config) -> list[dict]:
    import torch

    from hume.models.system2 import System2
    from hume.policy.hume_policy import candidate_schedule

    model_cfg = SIZES[size]
    s2_steps = dataclasses.replace(model_cfg.system2, num_steps=cfg.num_steps)
    torch.manual_seed(cfg.seed)
    s2 = System2(
        model_cfg.system2,
        image_size=model_cfg.image_size,
        chunk_size=model_cfg.chunk_size,
        action_dim=model_cfg.max_action_dim,
        state_dim=model_cfg.max_state_dim,
    )
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    s2 = s2.to(device, dtype).eval()
    params = sum(p.numel() for p in s2.parameters())
    gen = torch.Generator().manual_seed(cfg.seed)
    c, length = len(model_cfg.cameras), model_cfg.system2.max_token_len
    images = torch.rand((1, c, 3, model_cfg.image_size, model_cfg.image_size), generator=gen) * 2 - 1
    images = images.to(device, dtype)
    image_masks = torch.ones(1, c, dtype=torch.bool, device=device)
    tokens = torch.randint(4, 700, (1, length), generator=gen).to(device)
    token_masks = (torch.arange(length)[None] < 12).to(device)  # a typical LIBERO instruction length
    state = torch.randn((1, model_cfg.max_state_dim), generator=gen).to(device, dtype)
    log.info(
        "%s: System 2 with %.1fM parameters, %d prefix tokens",
        size,
        params / 1e6,
        c * s2.tokens_per_image + length,
    )

    rows = []
    for n in cfg.candidates:
        noise = torch.randn((1, n, model_cfg.chunk_size, model_cfg.max_action_dim), generator=gen)
        noise = noise.to(device, dtype)
        plan = candidate_schedule(dataclasses.replace(model_cfg, system2=s2_steps), n, 0.0)
        t0, dt, temperature = (plan[k][None].to(device, dtype) for k in ("t0", "dt", "temperature"))
        steps = plan["steps"][None].to(device)

        def shared(noise=noise, t0=t0, dt=dt, steps=steps, temperature=temperature):
            cache = s2.encode_prefix(*s2.embed_prefix(images, image_masks, tokens, token_masks))
            return s2.sample(cache, state, noise, t0, dt, steps, temperature)

        def separate(noise=noise, t0=t0, dt=dt, steps=steps, temperature=temperature, n=n):
            out = []
            for i in range(n):
                cache = s2.encode_prefix(*s2.embed_prefix(images, image_masks, tokens, token_masks))
                sl = slice(i, i + 1)
                out.append(
                    s2.sample(
                        cache, state, noise[:, sl], t0[:, sl], dt[:, sl], steps[:, sl], temperature[:, sl]
                    )
                )
            return torch.cat(out, 1)

        def naive(noise=noise, t0=t0, dt=dt, steps=steps, temperature=temperature):
            return sample_naive(
                s2, images, image_masks, tokens, token_masks, state, noise, t0, dt, steps, temperature
            )

        with torch.no_grad():
            diff = float((shared() - naive()).abs().max().float())
            for _ in range(cfg.warmup):
                shared(), separate(), naive()
            times: dict[str, list[float]] = {"naive": [], "separate": [], "shared": []}
            for _ in range(cfg.repeats):
                times["naive"].append(_seconds(naive, device))
                times["separate"].append(_seconds(separate, device))
                times["shared"].append(_seconds(shared, device))
        best = {k: min(v) for k, v in times.items()}
        row = {
            "size": size,
            "n": n,
            "naive_s": round(best["naive"], 4),
            "separate_s": round(best["separate"], 4),
            "shared_prefix_s": round(best["shared"], 4),
            "speedup": round(best["naive"] / best["shared"], 2),
            "speedup_vs_separate": round(best["separate"] / best["shared"], 2),
            "max_abs_diff": diff,
            "params": params,
        }
        log.info("%s", row)
        rows.append(row)
    return rows


def measure_think(cfg: Config) -> list[dict]:
    """The checkpoint's whole think, per N and path: median ms over `repeats` interleaved calls."""
    import numpy as np
    import torch

    from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY
    from hume.policy import HumePolicy

    rng = np.random.default_rng(cfg.seed)
    rows = []
    for n in cfg.candidates:
        policies = {
            path: HumePolicy.from_pretrained(cfg.checkpoint, num_candidates=n, compile=path == "fast")
            for path in cfg.paths
        }
        pcfg = next(iter(policies.values())).config
        # num_steps, device and dtype as the System-2 rows (`.to` traces a fast policy again).
        for path, policy in policies.items():
            s2 = dataclasses.replace(policy.config.system2, num_steps=cfg.num_steps)
            policy.config = dataclasses.replace(policy.config, system2=s2)
            policies[path] = policy.to(cfg.device, getattr(torch, cfg.dtype))
        obs: dict[str, Any] = {
            IMAGE_KEY.format(c): rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in pcfg.cameras
        }
        obs |= {STATE_KEY: rng.normal(size=pcfg.state_dim).astype(np.float32), TASK_KEY: "pick up the bowl"}
        noise = rng.normal(size=(n, pcfg.chunk_size, pcfg.max_action_dim)).astype(np.float32)
        chunks = {path: p.think(obs, noise) for path, p in policies.items()}
        ref = chunks[cfg.paths[0]].candidates
        diff = max(float(np.abs(c.candidates - ref).max()) for c in chunks.values())
        times: dict[str, list[float]] = {path: [] for path in policies}
        device = torch.device(cfg.device)
        for _ in range(cfg.warmup + cfg.repeats):
            for path, policy in policies.items():
                times[path].append(_seconds(functools.partial(policy.think, obs, noise), device))
        row = {"n": n, "max_abs_diff": diff}
        row |= {f"{path}_traced_graphs": p.traced_graphs for path, p in policies.items()}
        row |= {f"{path}_ms": round(float(np.median(t[cfg.warmup :])) * 1e3, 2) for path, t in times.items()}
        log.info("think %s", row)
        rows.append(row)
    base = next((r for r in rows if r["n"] == 1), None)
    for row in rows:
        for path in cfg.paths:
            if base is not None:
                row[f"{path}_vs_n1"] = round(row[f"{path}_ms"] / base[f"{path}_ms"], 2)
    return rows


def run(cfg: Config) -> dict:
    import torch

    cfg = cfg.effective()
    torch.set_num_threads(cfg.threads)
    rows = [row for size in cfg.sizes for row in measure(size, cfg)]
    result = {
        "benchmark": "best-of-n",
        "device": cfg.device,
        "dtype": cfg.dtype,
        "threads": cfg.threads,
        "num_steps": cfg.num_steps,
        "repeats": cfg.repeats,
        "results": rows,
    }
    if rows:
        first = [r for r in rows if r["size"] == cfg.sizes[0]]
        top = next((r for r in first if r["n"] == 5), first[-1])
        result |= {k: top[k] for k in ("size", "n", "naive_s", "separate_s", "shared_prefix_s", "speedup")}
    if cfg.checkpoint:
        result |= {"checkpoint": cfg.checkpoint, "think": measure_think(cfg)}
    return result


def table(result: dict) -> str:
    lines = [_system2_table(result)] if result["results"] else []
    if "think" in result:
        paths = [k[: -len("_ms")] for k in result["think"][0] if k.endswith("_ms")]
        lines.append(f"think of {result['checkpoint']} (median ms, and / N = 1):")
        lines.append(f"{'N':>3} " + " ".join(f"{p:>10} {'/ N=1':>6}" for p in paths))
        for r in result["think"]:
            cells = [f"{r[p + '_ms']:>10.2f} {r.get(p + '_vs_n1', float('nan')):>6.2f}" for p in paths]
            lines.append(f"{r['n']:>3} " + " ".join(cells))
    return "\n".join(lines)


def _system2_table(result: dict) -> str:
    header = (
        f"{'size':<5} {'N':>3} {'naive s':>9} {'separate s':>11} {'shared s':>9} {'speedup':>8} {'vs sep':>7}"
    )
    rows = [
        f"{r['size']:<5} {r['n']:>3} {r['naive_s']:>9.3f} {r['separate_s']:>11.3f} "
        f"{r['shared_prefix_s']:>9.3f} {r['speedup']:>7.2f}x {r['speedup_vs_separate']:>6.2f}x"
        for r in result["results"]
    ]
    return "\n".join([header, *rows])
