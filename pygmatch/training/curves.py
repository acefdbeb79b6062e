"""A run folder's record: its validation rows (``validation_rows``, ``run_record`` for the model
file) and ``curves.png``: training loss and validation metrics against steps."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

PERCENT_KEYS = ("val/auc@1", "val/auc@3", "val/auc@5", "val/precision@1", "val/recall@1", "val/within_0.5")  # drawn in %


def metric_rows(run: Path) -> list[dict]:
    """Every row of the run's CSV logs (one file per start: a resumed run adds one)."""
    return [r for path in sorted((Path(run) / "csv").glob("version_*/metrics.csv")) for r in csv.DictReader(path.open())]


def validation_rows(run: Path) -> list[dict]:
    """One dict per validation: ``step`` and the ``val/*`` metrics measured then."""
    rows = []
    for r in metric_rows(run):
        values = {k: float(v) for k, v in r.items() if k.startswith("val/") and v not in (None, "")}
        if values:
            rows.append({"step": int(r["step"]), **values})
    return rows


def run_record(checkpoint: Path) -> dict:
    """What a model file keeps of the run that trained it: the run's config, its validation
    curve and the step the weights are from (empty parts when ``checkpoint`` is not in a run folder)."""
    import torch  # noqa: PLC0415

    run = Path(checkpoint).parent
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else None
    step = torch.load(checkpoint, map_location="cpu", weights_only=True).get("global_step") if Path(checkpoint).suffix == ".ckpt" else None
    return {"run": str(run), "checkpoint": Path(checkpoint).name, "step": step, "config": config, "curve": validation_rows(run)}


def write_curves(run: Path) -> Path | None:
    """training and validation loss, and the validation metrics in % (``PERCENT_KEYS``) with the
    baselines measured on the same examples (``baseline/*``, lines), against steps, from the CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = metric_rows(run)
    if not rows:
        return None
    series = {}
    for r in rows:
        for key in ("train/loss", "val/loss", *PERCENT_KEYS):
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
    for key in PERCENT_KEYS:
        if key in series:
            steps, vals = zip(*series[key])
            b.plot(steps, vals, "o-", label=key, ms=3)
    percent = {key.split("/")[1] for key in PERCENT_KEYS}
    baselines = {k: float(v) for r in rows for k, v in r.items()  # measured once, on the same validation examples
                 if k.startswith("baseline/") and k.rsplit("/", 1)[1] in percent and v not in (None, "")}
    for (key, value), style in zip(sorted(baselines.items()), (":", "--", "-.")):
        b.axhline(value, ls=style, color="C1", lw=1, label=key.removeprefix("baseline/"))
    b.set(xlabel="step", ylabel="%", title="validation")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run stopped before its first validation has no series there
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run / "curves.png", dpi=110)
    plt.close(fig)
    return run / "curves.png"
