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
    """TensorBoard groups: loss/*, lr/* (one per optimiser), val/* and val_raw/* (held-out data)
    and stats/* (Q values, temperature)."""
    if name.startswith(("lr/", "val/", "val_raw/")):
        return name
    return ("loss/" if name in LOSSES else "stats/") + name


# Scalars that are losses (plotted), as opposed to statistics such as Q means or the temperature.
LOSSES = ("loss", "system1", "critic", "td", "cql", "actor", "temperature_loss")
# The held-out loss, with the checkpoint's weights and (moving average on) the raw ones: one panel.
VAL_LOSSES = ("val/loss", "val_raw/loss")


def plot_losses(output: str | Path) -> Path | None:
    """Write loss_curves.png (one panel per loss, the held-out ones together, log scale where
    positive); None without data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(output)
    logged = {name for row in rows for name in row}
    panels = [tuple(n for n in panel if n in logged) for panel in [*((n,) for n in LOSSES), VAL_LOSSES]]
    panels = [panel for panel in panels if panel]
    if not rows or not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, names in zip(axes[:, 0], panels, strict=True):
        lowest = float("inf")
        for name in names:
            points = [(row["step"], row[name]) for row in rows if name in row]
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, lw=1.2, marker="." if name in VAL_LOSSES else None, label=name)
            lowest = min(lowest, *values)
        ax.set_ylabel(names[0] if len(names) == 1 else "held-out loss")
        if len(names) > 1:
            ax.legend(fontsize=8)
        if lowest > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    path = Path(output) / PLOT_FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log.info("loss curves -> %s", path)
    return path
