"""`hume eval --config configs/eval/X.yaml --output DIR`: evaluate a policy in LIBERO -> DIR/results.json.

Modes: `sync` (the synchronous loop, hume/policy/sync_loop.py), `async` (System 2's latency replayed on a
virtual clock), `deploy` (the two-process runtime). `--backend=ray` runs the episodes as Ray tasks
(a private Ray, or a cluster with `--ray.address`); `--variants=all` adds the suite's LIBERO-PRO
variants and a robustness table. An interrupted run continues when started again with the same
--output. See docs/evaluation.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence

from hume.config import parse_config


def _print_results(results: dict, output: str) -> None:
    lo, hi = results["ci95"]
    for t in results["tasks"]:
        print(f"  task {t['task_id']:>2} {t['successes']:>3}/{t['episodes']:<3} {t['name']}")
    print(
        f"{results['suite']} ({results['mode']}): {results['success_rate']:.1%} success over "
        f"{results['episodes']} episodes, 95% CI [{lo:.1%}, {hi:.1%}] -> {output}/results.json"
    )
    print(json.dumps({k: results[k] for k in ("suite", "mode", "episodes", "success_rate", "ci95")}))


def main(argv: Sequence[str]) -> int:
    from sim.eval_config import EvalConfig

    cfg = parse_config(EvalConfig, argv, prog="hume eval")
    from sim.evaluator import evaluate
    from sim.libero_env import LiberoError, RendererError
    from sim.ray_backend import EpisodesFailed
    from sim.remote.client import RemoteError

    # mode=deploy: the episodes go through the deployed nodes (the deployment layer runs them).
    run_units: Callable[..., Iterator[dict]] | None = None
    if cfg.mode == "deploy":
        from deploy.libero_eval import run_deploy

        run_units = run_deploy
    try:
        if cfg.variants:
            from sim.robustness import evaluate_variants, markdown

            report = evaluate_variants(cfg, run_units=run_units)
            print(markdown(report["variants"], report["left_out"]), end="")
            print(f"-> {cfg.output}/robustness.json, robustness.md, robustness.png")
            print(json.dumps(report))
        else:
            _print_results(evaluate(cfg, run_units=run_units), cfg.output)
    except (LiberoError, RendererError, RemoteError) as e:
        print(f"hume eval: {e}", file=sys.stderr)
        return 2
    except EpisodesFailed as e:
        print(f"hume eval: {e}", file=sys.stderr)
        return 1
    return 0
