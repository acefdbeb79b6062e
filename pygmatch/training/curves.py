"""``curves.png`` of a run folder: training loss and validation metrics against steps."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_curves(run: Path) -> Path | None:
    """training loss and validation AUC against steps, from the CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for path in sorted((run / "csv").glob("version_*/metrics.csv")) for r in csv.DictReader(path.open())]
    if not rows:
        return None
    series = {}
    for r in rows:
        for key in ("train/loss", "val/loss", "val/auc@3", "val/auc@5", "val/auc@10", "val/precision", "val/recall"):
            if r.get(key) not in (None, ""):
                series.setdefault(key, []).append((int(r["step"]), float(r[key])))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train/loss", "val/loss"):
        if key in series:
            steps, vals = zip(*series[key])
            if key == "train/loss" and len(vals) > 20:  # smooth the noisy per-step loss
                w = max(1, len(vals) // 50)
                vals = np.convolve(vals, np.ones(w) / w, mode="valid")
                steps = steps[w - 1 :]
            a.plot(steps, vals, label=key)
    a.set(xlabel="step", ylabel="loss", title="loss")
    a.legend()
    for key in ("val/auc@3", "val/auc@5", "val/auc@10", "val/precision", "val/recall"):
        if key in series:
            steps, vals = zip(*series[key])
            b.plot(steps, vals, "o-", label=key, ms=3)
    b.set(xlabel="step", ylabel="%", title="validation")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run / "curves.png", dpi=110)
    plt.close(fig)
    return run / "curves.png"


def write_refiner_curve(curve: list[dict], levels: dict[str, dict], path: Path) -> Path:
    """The refiner's held-out error after each epoch against patches seen, with the levels of the
    methods that need no training (``levels``: name → ``offset_errors``) drawn as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = [c["patches_seen"] for c in curve]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in zip(axes, ("within_0.5", "mean_px"), ("% within 0.5 px of the truth", "mean error (px)")):
        ax.plot(seen, [c[key] for c in curve], "o-", label="learned refiner", ms=4)
        for (name, level), style in zip(levels.items(), ("--", ":", "-.")):
            ax.axhline(level[key], ls=style, color="gray", label=name)
        ax.set(xlabel="training patches seen", ylabel=label, title=f"held-out candidates: {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
