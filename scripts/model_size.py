"""Parameter counts of a model config, built on the meta device (nothing is allocated).

Usage: .venv/bin/python scripts/model_size.py --config configs/model/full.yaml [--dotted.key=value ...]
"""

from __future__ import annotations

import logging
import sys

import torch

from hume.config import parse_config
from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy

log = logging.getLogger("model_size")


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse_config(HumeConfig, argv, prog="model_size.py")
    with torch.device("meta"):
        counts = HumePolicy(config).num_parameters()
    for name, count in counts.items():
        log.info("%-11s %8.1fM", name, count / 1e6)
    log.info("%-11s %8.1fM", "total", sum(counts.values()) / 1e6)


if __name__ == "__main__":
    main(sys.argv[1:])
