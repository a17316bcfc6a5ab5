"""`hume deploy --config configs/deploy/NAME.yaml [--output DIR]`: both nodes, N episodes, metrics.json.

Writes to the output folder: metrics.json, latency.png (tick latency and chunk age over time),
episodes.mp4, ticks.csv, system1.json / system2.json and each node's log.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Sequence

from hume.config import ConfigError, check_checkpoint, parse_config


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    from hume.runtime.config import DeployConfig
    from hume.runtime.transport import EndpointError, check_endpoint, check_keys_dir

    cfg = parse_config(DeployConfig, argv, prog="hume deploy")
    check_checkpoint(cfg.checkpoint)
    try:
        check_keys_dir(cfg.transport.keys_dir)
        for endpoint in (cfg.transport.observations, cfg.transport.chunks):
            if endpoint:
                check_endpoint(endpoint, secure=bool(cfg.transport.keys_dir))
    except EndpointError as e:
        raise ConfigError(str(e)) from None

    from deploy.launcher import DeploymentError, run_deployment

    # Stop both nodes on Ctrl-C and on SIGTERM. SIGINT is installed explicitly: a launcher started
    # from a background job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    level = logging.getLevelName(logging.getLogger().level)
    try:
        result = run_deployment(cfg, log_level=level)
    except DeploymentError as e:
        print(f"hume deploy: {e}")
        return 1
    m = result.metrics
    print(
        json.dumps(
            {k: m[k] for k in ("episodes", "successes", "ticks", "tick_ms", "deadline_misses", "holds")}
        )
    )
    print(f"wrote {result.output / 'metrics.json'}")
    return 0
