"""Training scalars: one JSON line per logged step (metrics.jsonl), TensorBoard events, and a PNG
of the loss curves at the end. A resumed run drops what the interrupted one logged after its
checkpoint, so the files describe one uninterrupted curve."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PLOT_FILE = "loss_curves.png"


def read_metrics(output: str | Path) -> list[dict]:
    path = Path(output) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    def __init__(self, output: str | Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.path = self.output / METRICS_FILE
        kept = [row for row in read_metrics(self.output) if row["step"] <= start_step]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        # purge_step hides events past the checkpoint that an interrupted run had written.
        self.writer = SummaryWriter(str(self.output / TENSORBOARD_DIR), purge_step=start_step + 1)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        row = {"step": step, **scalars}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for name, value in scalars.items():
            self.writer.add_scalar(_tag(name), value, step)

    def close(self) -> None:
        self.writer.close()


def _tag(name: str) -> str:
    """TensorBoard groups: loss/*, lr/* (one per optimiser) and stats/* (Q values, temperature)."""
    if name.startswith("lr/"):
        return name
    return ("loss/" if name in LOSSES else "stats/") + name


# Scalars that are losses (plotted), as opposed to statistics such as Q means or the temperature.
LOSSES = ("loss", "system1", "critic", "td", "cql", "actor", "temperature_loss")


def plot_losses(output: str | Path) -> Path | None:
    """Write loss_curves.png (one panel per loss, log scale where positive); None without data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(output)
    names = [n for n in LOSSES if any(n in row for row in rows)]
    if not rows or not names:
        return None
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.2 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        points = [(row["step"], row[name]) for row in rows if name in row]
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, lw=1.2)
        ax.set_ylabel(name)
        if min(values) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    path = Path(output) / PLOT_FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log.info("loss curves -> %s", path)
    return path
